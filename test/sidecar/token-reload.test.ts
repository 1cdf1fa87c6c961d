import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolveAgentConfig } from "../../src/agent/index.js";
import { registerApp, startEchoApp, startMesh, startSidecar } from "../e2e/mesh.js";

test("reloadToken (SIGHUP) re-reads the token file: a sidecar with a useless token becomes ready with a service-identity token", async (t) => {
  const mesh = await startMesh(t, { aclsEnabled: true });
  const app = await startEchoApp(t);
  await registerApp(mesh, { name: "api", appPort: app.port });
  const created = await mesh.mgmt.request({ method: "PUT", path: "/v1/acl/token", body: { ServiceIdentities: [{ ServiceName: "api" }] } });
  const good = (created.body as { SecretID: string }).SecretID;
  const dir = mkdtempSync(join(tmpdir(), "sidecar-token-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "token");
  writeFileSync(file, "00000000-aaaa-bbbb-cccc-000000000000\n", { mode: 0o600 });

  const { sidecar } = await startSidecar(
    t,
    mesh,
    { t: "proxy-id", proxyId: "api-sidecar-proxy" },
    { agent: resolveAgentConfig({ httpAddr: mesh.agent.address, tokenFile: file }, {}), waitReady: false },
  );
  assert.equal((await fetch(`${sidecar.adminUrl()}/ready`)).status, 503);

  writeFileSync(file, `${good}\n`);
  sidecar.reloadToken();
  await sidecar.ready;
  assert.equal(sidecar.status().service, "api");
  assert.equal((await fetch(`${sidecar.adminUrl()}/ready`)).status, 200);
});
