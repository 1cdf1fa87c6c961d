// `-register` with the least privilege a sidecar can hold: ACLs on, default deny, and a token with only the
// service identity of the proxied service (spec §11.3). It registers `<service>-sidecar-proxy`, keeps its
// TTL check passing, is discovered and reached through another proxy, and deregisters on SIGTERM.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { AgentError, createAgentClient, getAgentService, resolveAgentConfig, type AgentClient } from "../../src/agent/index.js";
import { pickFreePort } from "../../src/net/index.js";
import { startCli } from "./child.js";
import { dial, echo, quietLogger, setIntention, startEchoApp, startMesh, type Mesh } from "./mesh.js";

/** A token holding only the service identity `name`; returns the path of a file with its secret. */
async function serviceIdentityTokenFile(t: TestContext, mesh: Mesh, name: string): Promise<{ file: string; secret: string }> {
  const res = await mesh.mgmt.request({ method: "PUT", path: "/v1/acl/token", body: { ServiceIdentities: [{ ServiceName: name }] } });
  const secret = (res.body as { SecretID: string }).SecretID;
  const dir = mkdtempSync(join(tmpdir(), "token-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, `${name}.token`);
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { file, secret };
}

function clientWith(mesh: Mesh, token: string): AgentClient {
  return createAgentClient(resolveAgentConfig({ httpAddr: mesh.agent.address, token }, {}), { log: quietLogger() });
}

test("-register works with ACLs on, default deny and only a service-identity token", async (t) => {
  const mesh = await startMesh(t, { aclsEnabled: true });
  const app = await startEchoApp(t);
  const web = await serviceIdentityTokenFile(t, mesh, "web");
  const webClient = clientWith(mesh, web.secret);
  t.after(() => webClient.close());

  // Why not Consul's `<service>-proxy`: the identity does not cover that name.
  await assert.rejects(
    webClient.request({ method: "PUT", path: "/v1/agent/service/register", body: { Name: "web-proxy", Kind: "connect-proxy", Port: 1, Proxy: { DestinationServiceName: "web" } } }),
    (e: unknown) => e instanceof AgentError && e.status === 403,
  );

  const base = 30_000 + Math.floor(Math.random() * 29_000);
  const sidecar = startCli([
    "proxy", "-service", "web", "-service-addr", `127.0.0.1:${app.port}`, "-register",
    "-sidecar-min-port", String(base), "-sidecar-max-port", String(base + 50),
    "-http-addr", mesh.agent.address, "-token-file", web.file, "-log-json", "-checklist-interval", "0",
  ]);
  t.after(() => void sidecar.proc.kill("SIGKILL"));
  await sidecar.waitFor(/"msg":"sidecar ready"/);
  const reg = await getAgentService(mesh.mgmt, "web-sidecar-proxy");
  assert.equal(reg.service, "web-sidecar-proxy");
  assert.equal(reg.proxy?.destinationServiceName, "web");
  assert.ok(reg.port >= base && reg.port <= base + 50);
  const checks = (await mesh.mgmt.request({ method: "GET", path: "/v1/agent/checks" })).body as Record<string, { Status: string }>;
  assert.equal(checks["web-sidecar-proxy-ttl"]?.Status, "passing");

  // A caller with its own identity finds the registration through discovery and reaches the app through it.
  await setIntention(mesh, "client", "web", "allow");
  const client = await serviceIdentityTokenFile(t, mesh, "client");
  const upstreamPort = await pickFreePort();
  const caller = startCli([
    "proxy", "-service", "client", "-upstream", `web:${upstreamPort}`,
    "-http-addr", mesh.agent.address, "-token-file", client.file, "-log-json", "-checklist-interval", "0",
  ]);
  t.after(() => void caller.proc.kill("SIGKILL"));
  await caller.waitFor(/"msg":"sidecar ready"/);
  const sock = await dial(upstreamPort);
  assert.equal(await echo(sock, "least privilege"), "least privilege");
  sock.destroy();

  caller.proc.kill("SIGTERM");
  assert.equal(await caller.exited, 0);
  sidecar.proc.kill("SIGTERM");
  assert.equal(await sidecar.exited, 0);
  await assert.rejects(getAgentService(mesh.mgmt, "web-sidecar-proxy"), (e: unknown) => e instanceof AgentError && e.code === "not_found");
});
