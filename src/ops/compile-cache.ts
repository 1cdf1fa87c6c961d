// Node's compile cache (the V8 code cache of every module loaded): a restart compiles nothing it
// compiled before. To `/ready` 343 → 300 ms and CPU 370 → 330 ms in one run (bench/README.md, "where
// the time and memory go"), for ~0.6 MB more RSS. The cache holds code the process will run, so it
// goes only where no other user can write: the directory systemd made for the unit (CacheDirectory=,
// $CACHE_DIRECTORY: the unit's user's, mode 0700), else the user's own cache directory (XDG:
// $XDG_CACHE_HOME, or ~/.cache). Either is used only when it is a directory this user owns that
// nobody else can write; never a shared one such as /tmp (Node's own default), where another user
// could plant compiled code. NODE_COMPILE_CACHE, the user's own choice, wins and is left to Node.
import { lstatSync, mkdirSync } from "node:fs";
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
