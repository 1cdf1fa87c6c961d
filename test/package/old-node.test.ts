// The installed command on a Node older than the engines range: one line saying what to install, exit 1,
// no stack trace. The range is raised past this Node in a copy of the package, since the test cannot run
// an old Node.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

test("on a Node below package.json's engines range the command says which Node it needs and exits 1", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "connect-sidecar-engines-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "bin"));
  copyFileSync(join(REPO, "bin", "connect-sidecar.cjs"), join(dir, "bin", "connect-sidecar.cjs"));
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { engines: { node: string } };
  const [major] = process.versions.node.split(".").map(Number);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ ...pkg, engines: { node: `>=${major! + 1}.0` } }));

  const err = await run(process.execPath, [join(dir, "bin", "connect-sidecar.cjs"), "--version"]).then(
    () => assert.fail("exited 0 on a Node below the range"),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(err.code, 1);
  assert.match(err.stderr, new RegExp(`needs Node\\.js >=${major! + 1}\\.0, and this is Node\\.js ${process.versions.node}`));
  assert.doesNotMatch(err.stderr, /\n\s+at /, "no stack trace");
});

test("on a Node in the range the command runs the CLI", async () => {
  const { stdout } = await run(process.execPath, [join(REPO, "bin", "connect-sidecar.cjs"), "--version"]);
  assert.match(stdout, /^connect-sidecar v\d+\.\d+\.\d+/);
});
