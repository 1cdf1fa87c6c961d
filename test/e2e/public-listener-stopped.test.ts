// A registration change that stops the public listener (bind_port 0) lets its live connections go
// on, and the sidecar's own shutdown still owns them: its drain waits for them, and past the drain
// timeout it cuts them, as it would the current listener's.
import assert from "node:assert/strict";
import { test } from "../support/leaks.js";
import { captureLog } from "../support/log-capture.js";
import { closed, dial, echo, freePort, registerApp, setIntention, startEchoApp, startMesh, startSidecar } from "./mesh.js";

test("a public listener stopped by a registration change still has its live connections drained, then cut, by the sidecar's shutdown", async (t) => {
  const mesh = await startMesh(t);
  const apiApp = await startEchoApp(t);
  const upstreamPort = await freePort();
  const apiPort = await registerApp(mesh, { name: "api", appPort: apiApp.port });
  await registerApp(mesh, { name: "web", appPort: 1, upstreams: [{ DestinationName: "api", LocalBindPort: upstreamPort }] });
  await setIntention(mesh, "web", "api", "allow");
  const apiLog = captureLog();
  const api = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" }, { log: apiLog.log });
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "before"), "before");
  await registerApp(mesh, { name: "api", appPort: apiApp.port, sidecarPort: apiPort, proxyConfig: { bind_port: 0 } });
  await apiLog.next((l) => l.msg.includes("bind port is now 0"), "the public listener to stop");
  assert.equal(await echo(live, "after"), "after", "a live connection outlives its listener's stop");

  assert.equal(await api.sidecar.close(300), 1, "the drain waited for the stopped listener's connection, then cut it");
  await closed(live);
});
