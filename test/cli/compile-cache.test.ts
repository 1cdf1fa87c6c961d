import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { compileCacheDir } from "../../src/cli.js";
import { CLI_PATH } from "../e2e/child.js";

const run = promisify(execFile);

test("the compile cache goes only in the cache directory systemd made for the unit, and never overrides NODE_COMPILE_CACHE", () => {
  assert.equal(compileCacheDir({}), undefined, "no unit cache directory: opt-in only");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "" }), undefined);
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/connect-sidecar" }), "/var/cache/connect-sidecar/compile-cache");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a:/var/cache/b" }), "/var/cache/a/compile-cache", "the first of several");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a", NODE_COMPILE_CACHE: "/elsewhere" }), undefined, "the user's own choice wins");
});

test("started with a unit cache directory, the CLI leaves Node's compile cache of its modules there", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cs-cache-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env, CACHE_DIRECTORY: dir };
  delete env.NODE_COMPILE_CACHE;
  const { stdout } = await run(process.execPath, [CLI_PATH, "--version"], { env });
  assert.match(stdout, /connect-sidecar/);
  const cached = await readdir(join(dir, "compile-cache"), { recursive: true });
  assert.ok(cached.length > 1, `compiled modules cached: ${cached.join(", ")}`);
});
