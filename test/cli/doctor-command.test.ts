import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { CLI_PATH, startCli } from "../e2e/child.js";
import { registerApp, startEchoApp, startMesh } from "../e2e/mesh.js";

test("doctor is a CLI command: a JSON report alone on stdout, exit 1 on a FAIL", async (t) => {
  const mesh = await startMesh(t, { aclsEnabled: true });
  const app = await startEchoApp(t);
  await registerApp(mesh, { name: "api", appPort: app.port });
  // The management token is a FAIL (token-management), so the exit code is 1.
  const proc = spawn(process.execPath, [CLI_PATH, "doctor", "-sidecar-for", "api", "-http-addr", mesh.agent.address,
    "-token", mesh.agent.managementToken, "-json"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  proc.stderr.resume();
  const [code] = (await once(proc, "exit")) as [number];
  assert.equal(code, 1);
  const report = JSON.parse(stdout) as { checks: Array<{ id: string; verdict: string }> };
  const verdict = (id: string) => report.checks.find((c) => c.id === id)?.verdict;
  assert.equal(verdict("acl-enabled"), "PASS");
  assert.equal(verdict("token-management"), "FAIL");
  assert.equal(verdict("app-address"), "PASS");
  assert.ok(!stdout.includes(mesh.agent.managementToken), "the token secret is never printed");
});

test("doctor with no identity flag is a usage error (exit 2)", async () => {
  const child = startCli(["doctor", "-http-addr", "127.0.0.1:1"]);
  assert.equal(await child.exited, 2);
  assert.match(child.lines.join("\n"), /-service or -proxy-id must be specified/);
});
