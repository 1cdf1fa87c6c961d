// Node's compile cache (the V8 code cache of every module loaded): a restart compiles nothing it
// compiled before. To `/ready` 343 → 300 ms and CPU 370 → 330 ms in one run (bench/README.md, "where
// the time and memory go"), for ~0.6 MB more RSS. The cache holds code the process will run, so it
// goes only where no other user can write: the directory systemd made for the unit (CacheDirectory=,
// $CACHE_DIRECTORY: the unit's user's, mode 0700), else the user's own cache directory (XDG:
// $XDG_CACHE_HOME, or ~/.cache). Either is used only when it is a directory this user owns that
// nobody else can write; never a shared one such as /tmp (Node's own default), where another user
// could plant compiled code. NODE_COMPILE_CACHE, the user's own choice, wins and is left to Node.
import { lstatSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { enableCompileCache } from "node:module";
import { isAbsolute, join } from "node:path";

/** Where the compile cache goes for `env`, or undefined when NODE_COMPILE_CACHE decides or no directory fits. */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  if (env.NODE_COMPILE_CACHE !== undefined) return undefined;
  const unitCache = env.CACHE_DIRECTORY?.split(":")[0];
  if (unitCache !== undefined && unitCache !== "") return join(unitCache, "compile-cache");
  // XDG Base Directory: a relative $XDG_CACHE_HOME is invalid and ignored.
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "connect-sidecar", "compile-cache");
  const home = env.HOME;
  if (home !== undefined && isAbsolute(home)) return join(home, ".cache", "connect-sidecar", "compile-cache");
  return undefined;
}

/** Whether `dir` (created 0700 if missing) is a directory owned by this user that no other user can write. */
export function isPrivateDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
  } catch {
    return false; // unwritable or read-only: start without the cache
  }
}

/** Turns the compile cache on for the modules loaded from now on, where compileCacheDir() says; returns the directory used. */
export function enablePrivateCompileCache(env: NodeJS.ProcessEnv): string | undefined {
  const dir = compileCacheDir(env);
  if (dir === undefined || !isPrivateDir(dir)) return undefined;
  enableCompileCache(dir); // a failure only costs the cache
  return dir;
}

// Node never prunes its compile cache: each Node version (and V8 flag set) gets a subdirectory, and
// each module path its entry, so an upgrade of Node, or of this package (the bundle's chunk names
// carry a content hash), leaves entries nothing will read again. An entry is read at every start of
// a process that loads its module, and the kernel refreshes a file's access time on such a read at
// least daily (relatime, the default mount option); so an entry neither read nor written for 30 days
// is dropped. On a noatime mount that also drops live entries once a month: one start recompiles them.
const COMPILE_CACHE_MAX_IDLE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * Removes from `dir` (a directory enablePrivateCompileCache() used) each regular file that has been
 * neither read nor written for `maxIdleMs` before `now`, then the subdirectories that leaves empty.
 * Symbolic links are neither followed nor removed. Never throws; returns how many files it removed.
 */
export function pruneCompileCache(dir: string, now: number, maxIdleMs = COMPILE_CACHE_MAX_IDLE_MS): number {
  let entries;
  try {
    // Not readdir's `recursive`, which descends into symbolic links to directories.
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let removed = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      removed += pruneCompileCache(path, now, maxIdleMs);
      try {
        rmdirSync(path); // only when that left it empty
      } catch {
        // not empty
      }
    } else if (e.isFile()) {
      try {
        const st = lstatSync(path);
        if (Math.max(st.atimeMs, st.mtimeMs) < now - maxIdleMs) {
          unlinkSync(path);
          removed++;
        }
      } catch {
        // gone already, or not ours to remove: leave it
      }
    }
  }
  return removed;
}
