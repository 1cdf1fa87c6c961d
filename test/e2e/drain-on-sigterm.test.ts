import assert from "node:assert/strict";
import { test } from "node:test";
import { startCli } from "./child.js";
import { closed, dial, echo, freePort, registerApp, startEchoApp, startMesh, startSidecar } from "./mesh.js";

async function meshWithApiChild(t: import("node:test").TestContext, drainTimeout: string) {
  const mesh = await startMesh(t);
  const apiApp = await startEchoApp(t);
  const webApp = await startEchoApp(t);
  const upstreamPort = await freePort();
  await registerApp(mesh, { name: "api", appPort: apiApp.port });
  await registerApp(mesh, { name: "web", appPort: webApp.port, upstreams: [{ DestinationName: "api", LocalBindPort: upstreamPort }] });
  const child = startCli(
    ["proxy", "-sidecar-for", "api", "-http-addr", mesh.agent.address, "-drain-timeout", drainTimeout, "-log-json"],
    { CONSUL_HTTP_TOKEN: mesh.agent.managementToken },
  );
  t.after(() => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
  });
  await child.waitFor(/"msg":"sidecar ready"/);
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });
  return { mesh, child, upstreamPort };
}

test("SIGTERM drains: live transfers finish, new connections are refused, exit 0", async (t) => {
  const { child, upstreamPort } = await meshWithApiChild(t, "30s");
  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "before"), "before");

  child.proc.kill("SIGTERM");
  await child.waitFor(/public listener stopped accepting/);
  const big = "y".repeat(512 * 1024);
  assert.equal(await echo(live, big), big, "the live connection still carries data while draining");

  const fresh = await dial(upstreamPort);
  await assert.rejects(echo(fresh, "new"), /connection ended/);
  await closed(fresh);

  live.end();
  await closed(live);
  assert.equal(await child.exited, 0);
  assert.ok(child.lines.some((l) => l.includes('"msg":"stopped cleanly"')));
});

test("SIGTERM with a connection still open past -drain-timeout cuts it and exits 1; first line names Node and OpenSSL", async (t) => {
  const { child, upstreamPort } = await meshWithApiChild(t, "200ms");
  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "stay"), "stay");
  const wasClosed = closed(live);
  child.proc.kill("SIGTERM");
  assert.equal(await child.exited, 1);
  await wasClosed;
  const first = JSON.parse(child.lines[0]!) as Record<string, unknown>;
  assert.equal(first.node, process.versions.node);
  assert.equal(first.openssl, process.versions.openssl);
});
