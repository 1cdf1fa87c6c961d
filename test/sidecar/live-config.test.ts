import assert from "node:assert/strict";
import { test } from "node:test";
import { listAgentServices } from "../../src/agent/index.js";
import { closed, dial, echo, freePort, registerApp, startEchoApp, startMesh, startSidecar, webToApiMesh } from "../e2e/mesh.js";
import { until } from "../support/wait.js";

test("a changed registration applies live: the public listener re-binds without dropping connections, new upstreams open", async (t) => {
  const { mesh, apiApp, webApp, upstreamPort } = await webToApiMesh(t);
  const api = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  const web = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "one"), "one");

  // api's sidecar moves to a new port; web gains a second upstream (to itself).
  const newApiPort = await registerApp(mesh, { name: "api", appPort: apiApp.port, sidecarPort: await freePort() });
  const secondUpstream = await freePort();
  await registerApp(mesh, {
    name: "web",
    appPort: webApp.port,
    upstreams: [
      { DestinationName: "api", LocalBindPort: upstreamPort },
      { DestinationName: "web", LocalBindPort: secondUpstream },
    ],
  });
  await until(() => api.sidecar.publicAddress()?.port === newApiPort, "the api sidecar to re-bind its public listener");
  await until(() => web.sidecar.status().upstreams.length === 2, "the web sidecar to open its second upstream");
  assert.equal(await echo(live, "two"), "two", "the connection made before the re-bind still works");

  const viaNew = await dial(secondUpstream);
  assert.equal(await echo(viaNew, "three"), "three");
  viaNew.end();
  await closed(viaNew);
  live.end();
  await closed(live);
});

test("static mode with -register registers <service>-sidecar-proxy[-<suffix>] with a TTL check and deregisters on close", async (t) => {
  const mesh = await startMesh(t);
  const app = await startEchoApp(t);
  const { sidecar } = await startSidecar(t, mesh, {
    t: "static",
    service: "api",
    listen: { host: "127.0.0.1", port: 0 },
    app: { host: "127.0.0.1", port: app.port },
    upstreams: [],
    register: { idSuffix: "x" },
  });
  const services = await listAgentServices(mesh.mgmt);
  const reg = services.get("api-sidecar-proxy-x");
  assert.ok(reg, "registered");
  assert.equal(reg.kind, "connect-proxy");
  assert.equal(reg.service, "api-sidecar-proxy");
  assert.equal(reg.port, sidecar.publicAddress()!.port);
  assert.equal(reg.proxy?.destinationServiceName, "api");
  const checks = (await mesh.mgmt.request({ method: "GET", path: "/v1/agent/checks" })).body as Record<string, { Status: string }>;
  assert.equal(checks["api-sidecar-proxy-x-ttl"]?.Status, "passing");
  assert.deepEqual(sidecar.status().registration, { id: "api-sidecar-proxy-x", checkId: "api-sidecar-proxy-x-ttl" });

  assert.equal(await sidecar.close(1000), 0);
  assert.equal((await listAgentServices(mesh.mgmt)).has("api-sidecar-proxy-x"), false);
});
