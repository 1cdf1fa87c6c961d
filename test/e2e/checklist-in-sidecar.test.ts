import assert from "node:assert/strict";
import { test } from "node:test";
import { startCli } from "./child.js";
import { registerApp, startEchoApp, startMesh } from "./mesh.js";

test("a running sidecar checks the production checklist on itself: a WARN per FAIL at start-up, and the checks in /status", async (t) => {
  const mesh = await startMesh(t, { aclsEnabled: true });
  const app = await startEchoApp(t);
  await registerApp(mesh, { name: "api", appPort: app.port });
  // The management token is a checklist FAIL (token-management): the sidecar must say so.
  const child = startCli(["proxy", "-sidecar-for", "api", "-http-addr", mesh.agent.address, "-log-json"], {
    CONSUL_HTTP_TOKEN: mesh.agent.managementToken,
  });
  t.after(async () => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
    await child.exited;
  });
  const ready = JSON.parse(await child.waitFor(/"msg":"sidecar ready"/)) as { admin: string };
  const warn = JSON.parse(await child.waitFor(/production checklist FAIL: token-management/)) as { level: number; fix?: string };
  assert.equal(warn.level, 40, "logged at warn");
  assert.match(warn.fix ?? "", /service-identity api/);

  const status = (await (await fetch(`${ready.admin}/status`)).json()) as {
    checklist?: { checks: Array<{ id: string; verdict: string; seen: string }> };
  };
  const checks = status.checklist?.checks ?? [];
  assert.equal(checks.find((c) => c.id === "token-management")?.verdict, "FAIL");
  assert.equal(checks.find((c) => c.id === "acl-enabled")?.verdict, "PASS");
  const port = checks.find((c) => c.id === "public-port-bind");
  assert.equal(port?.verdict, "PASS");
  assert.match(port?.seen ?? "", /held by this sidecar process/);
  assert.ok(!JSON.stringify(status).includes(mesh.agent.managementToken), "no token in /status");
});
