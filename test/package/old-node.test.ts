// The installed command on a Node older than the engines range: one line saying what to install, exit 1,
// no stack trace. The range is raised past this Node in a copy of the package, since the test cannot run
// an old Node.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** Runs a copy of the installed command whose package.json has `engines.node` = `range`. */
async function runWithEngines(t: TestContext, range: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "connect-sidecar-engines-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "bin"));
  copyFileSync(join(REPO, "bin", "connect-sidecar.cjs"), join(dir, "bin", "connect-sidecar.cjs"));
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(dir, "package.json"), JSON.stringify({ ...pkg, engines: { node: range } }));
  // No dist/ beside this copy: a Node in the range gets as far as loading the CLI, and fails there.
  return run(process.execPath, [join(dir, "bin", "connect-sidecar.cjs"), "--version"]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

const [MAJOR, MINOR] = process.versions.node.split(".").map(Number) as [number, number];

test("on a Node below package.json's engines range the command says which Node it needs and exits 1", async (t) => {
  for (const range of [`>=${MAJOR + 1}.0`, `^${MAJOR}.${MINOR + 1}.0 || >=${MAJOR + 1}.0.0`, `^${MAJOR - 2}.0.0 || >=${MAJOR}.${MINOR + 1}.0`]) {
    const err = await runWithEngines(t, range);
    assert.equal(err.code, 1, range);
    assert.equal(err.stderr.split("\n")[0], `connect-sidecar ${version()} needs Node.js ${range}, and this is Node.js ${process.versions.node} (${process.execPath}).`);
    assert.doesNotMatch(err.stderr, /\n\s+at /, "no stack trace");
  }
  for (const range of [`^${MAJOR}.0.0 || >=${MAJOR + 1}.0.0`, `^${MAJOR - 2}.0.0 || >=${MAJOR}.0.0`, `>=${MAJOR}.${MINOR}`]) {
    assert.match((await runWithEngines(t, range)).stderr, /could not load .*dist\/bundle\/cli\.js/, `${range} lets this Node through`);
  }
});

function version(): string {
  return (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
}

test("on a Node in the range the command runs the CLI", async () => {
  const { stdout } = await run(process.execPath, [join(REPO, "bin", "connect-sidecar.cjs"), "--version"]);
  assert.match(stdout, /^connect-sidecar v\d+\.\d+\.\d+/);
});
