import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { promisify } from "node:util";
import { compileCacheDir, isPrivateDir, pruneCompileCache } from "../../src/ops/compile-cache.js";
import { CLI_PATH } from "../e2e/child.js";

const run = promisify(execFile);

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cs-cache-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The CLI's environment without any compile-cache setting but `extra`. */
function envWith(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of ["NODE_COMPILE_CACHE", "CACHE_DIRECTORY", "XDG_CACHE_HOME"]) if (!(k in extra)) delete env[k];
  return env;
}

test("the compile cache goes in the unit's cache directory, else the user's (XDG), and never overrides NODE_COMPILE_CACHE", () => {
  assert.equal(compileCacheDir({}), undefined, "no home, no unit: none");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "" }), undefined);
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/connect-sidecar", HOME: "/home/u" }), "/var/cache/connect-sidecar/compile-cache");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a:/var/cache/b" }), "/var/cache/a/compile-cache", "the first of several");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a", NODE_COMPILE_CACHE: "/elsewhere" }), undefined, "the user's own choice wins");
  assert.equal(compileCacheDir({ HOME: "/home/u" }), "/home/u/.cache/connect-sidecar/compile-cache");
  assert.equal(compileCacheDir({ HOME: "/home/u", XDG_CACHE_HOME: "/x/cache" }), "/x/cache/connect-sidecar/compile-cache");
  assert.equal(compileCacheDir({ HOME: "/home/u", XDG_CACHE_HOME: "rel/cache" }), "/home/u/.cache/connect-sidecar/compile-cache", "a relative XDG_CACHE_HOME is ignored");
  assert.equal(compileCacheDir({ HOME: "relative" }), undefined);
});

test("a cache directory is used only when it is this user's and nobody else can write it", async (t) => {
  const dir = await tempDir(t);
  assert.equal(isPrivateDir(join(dir, "new", "compile-cache")), true, "created for this user, 0700");
  const shared = join(dir, "shared");
  await mkdir(shared);
  await chmod(shared, 0o777);
  assert.equal(isPrivateDir(shared), false, "world-writable");
  await chmod(shared, 0o770);
  assert.equal(isPrivateDir(shared), false, "group-writable");
  await writeFile(join(dir, "file"), "");
  assert.equal(isPrivateDir(join(dir, "file")), false, "not a directory");
  assert.equal(isPrivateDir(join(dir, "file", "sub")), false, "cannot be created");
});

test("started with a unit cache directory, the CLI leaves Node's compile cache of its modules there", async (t) => {
  const dir = await tempDir(t);
  const { stdout } = await run(process.execPath, [CLI_PATH, "--version"], { env: envWith({ CACHE_DIRECTORY: dir }) });
  assert.match(stdout, /connect-sidecar/);
  const cached = await readdir(join(dir, "compile-cache"), { recursive: true });
  assert.ok(cached.length > 1, `compiled modules cached: ${cached.join(", ")}`);
});

test("started without one, the CLI caches in the user's ~/.cache, and not in a cache directory others can write", async (t) => {
  const home = await tempDir(t);
  await run(process.execPath, [CLI_PATH, "--version"], { env: envWith({ HOME: home }) });
  const cached = await readdir(join(home, ".cache", "connect-sidecar", "compile-cache"), { recursive: true });
  assert.ok(cached.length > 1, `compiled modules cached: ${cached.join(", ")}`);

  const shared = join(await tempDir(t), "compile-cache");
  await mkdir(shared);
  await chmod(shared, 0o777);
  await run(process.execPath, [CLI_PATH, "--version"], { env: envWith({ CACHE_DIRECTORY: join(shared, "..") }) });
  assert.deepEqual(await readdir(shared), [], "nothing cached where another user could plant code");
});

test("pruning drops cache entries neither read nor written for 30 days, and the directories left empty, and nothing else", async (t) => {
  const dir = await tempDir(t);
  const now = Date.now();
  const day = 24 * 60 * 60 * 1000;
  const at = async (path: string, accessed: number, modified: number) => {
    await writeFile(path, "x");
    await utimes(path, accessed / 1000, modified / 1000);
  };
  await mkdir(join(dir, "v22-old"));
  await at(join(dir, "v22-old", "a"), now - 40 * day, now - 90 * day);
  await mkdir(join(dir, "v24-now"));
  await at(join(dir, "v24-now", "stale"), now - 31 * day, now - 31 * day);
  await at(join(dir, "v24-now", "read-lately"), now - 2 * day, now - 90 * day);
  await at(join(dir, "v24-now", "written-lately"), now - 90 * day, now - 1 * day);
  const outside = await tempDir(t);
  await at(join(outside, "old"), now - 90 * day, now - 90 * day);
  await symlink(outside, join(dir, "v24-now", "link"));
  await symlink(join(outside, "old"), join(dir, "v24-now", "file-link"));

  assert.equal(pruneCompileCache(join(dir, "missing"), now), 0, "a missing directory is no error");
  assert.equal(pruneCompileCache(dir, now), 2, "v22-old/a and v24-now/stale");
  assert.deepEqual(await readdir(dir), ["v24-now"], "v22-old went with its last entry");
  assert.deepEqual((await readdir(join(dir, "v24-now"))).sort(), ["file-link", "link", "read-lately", "written-lately"]);
  assert.deepEqual(await readdir(outside), ["old"], "links are left alone, not followed");
});
