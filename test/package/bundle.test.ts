// The bundle (dist/bundle: what the installed command runs, built by `npm run build` from tsc's output)
// keeps every path that a module takes relative to its own file. esbuild moves each module into
// cli.js or chunks/, and chunks/ sits as deep below the package root as dist/src/<dir>/ does, so
// `new URL("../../../package.json", import.meta.url)` and the like name the same files as in dist/src.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const PACKAGE_ROOT = resolve(fileURLToPath(new URL("../../../", import.meta.url)));
const BUNDLE = join(PACKAGE_ROOT, "dist", "bundle");

test("every path the bundle takes relative to import.meta.url names a file of this package", () => {
  const files = readdirSync(BUNDLE, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".js"));
  assert.ok(files.includes("cli.js"), "npm run build made the bundle");
  const seen: string[] = [];
  for (const f of files) {
    const path = join(BUNDLE, f);
    for (const [, rel] of readFileSync(path, "utf8").matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)) {
      const target = fileURLToPath(new URL(rel!, pathToFileURL(path)));
      seen.push(`${f}: ${rel}`);
      assert.ok(target.startsWith(PACKAGE_ROOT + sep) && existsSync(target), `${f}: "${rel}" names ${target}, which is not a file of this package`);
    }
  }
  // package.json (the version), examples/consul.d (the demo) and the CLI itself (the demo's sidecars).
  assert.ok(seen.length >= 3, seen.join("\n"));
});
