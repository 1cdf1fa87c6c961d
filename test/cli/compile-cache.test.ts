import assert from "node:assert/strict";
import { test } from "node:test";
import { compileCacheDir } from "../../src/cli.js";

test("the compile cache goes only in the cache directory systemd made for the unit, and never overrides NODE_COMPILE_CACHE", () => {
  assert.equal(compileCacheDir({}), undefined, "no unit cache directory: opt-in only");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "" }), undefined);
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/connect-sidecar" }), "/var/cache/connect-sidecar/compile-cache");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a:/var/cache/b" }), "/var/cache/a/compile-cache", "the first of several");
  assert.equal(compileCacheDir({ CACHE_DIRECTORY: "/var/cache/a", NODE_COMPILE_CACHE: "/elsewhere" }), undefined, "the user's own choice wins");
});
