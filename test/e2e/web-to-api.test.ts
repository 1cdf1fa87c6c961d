import assert from "node:assert/strict";
import { test } from "node:test";
import { closed, dial, echo, setIntention, startSidecar, webToApiMesh } from "./mesh.js";

test("web → api: bytes cross both sidecars (upstream listener → mTLS → public listener → app) and back", async (t) => {
  const { mesh, apiApp: api, webApp: web, upstreamPort } = await webToApiMesh(t);
  await setIntention(mesh, "web", "api", "allow");
  const apiSidecar = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  const sock = await dial(upstreamPort);
  assert.equal(await echo(sock, "hello through the mesh"), "hello through the mesh");
  const big = "x".repeat(256 * 1024);
  assert.equal(await echo(sock, big), big);
  sock.end();
  await closed(sock);

  const status = apiSidecar.sidecar.status();
  assert.equal(status.ready, true);
  assert.equal(status.service, "api");
  assert.match(status.identity?.serviceUri ?? "", /^spiffe:\/\/[^/]+\/ns\/default\/dc\/dc1\/svc\/api$/);
  assert.equal(status.listeners.public?.address, `127.0.0.1:${apiSidecar.sidecar.publicAddress()?.port}`);
});

test("a deny intention created while a connection is open closes it, and new connections are refused", async (t) => {
  const { mesh, apiApp: api, webApp: web, upstreamPort } = await webToApiMesh(t);
  await setIntention(mesh, "web", "api", "allow");
  const apiSidecar = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "before"), "before");
  const wasClosed = closed(live);
  await setIntention(mesh, "web", "api", "deny");
  // A reset all the way to the app's client: a cut stream must not look like a complete one.
  assert.equal(await wasClosed, "ECONNRESET");
  // Cut by the revocation itself (the intentions watch waking on the change), not by a timeout or
  // an error: that is what makes it prompt. How prompt is a number for bench/, not an assertion.
  const closedBy = await apiSidecar.metrics.connectionsClosed.get();
  assert.deepEqual(
    closedBy.values.filter((v) => v.labels.listener === "public" && v.value > 0).map((v) => [v.labels.reason, v.value]),
    [["revoked", 1]],
  );

  const fresh = await dial(upstreamPort);
  await assert.rejects(echo(fresh, "after"), /connection ended after ""/);
  await closed(fresh);
});
