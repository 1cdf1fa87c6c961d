import assert from "node:assert/strict";
import { createServer } from "node:net";
import { once } from "node:events";
import { test } from "node:test";
import { getAgentService } from "../../src/agent/index.js";
import { startCli } from "../e2e/child.js";
import { startMesh } from "../e2e/mesh.js";

test("-register without -listen binds the lowest free port of the sidecar range and registers it", async (t) => {
  const mesh = await startMesh(t);
  // Occupy the first port of a private range so the sidecar has to skip it.
  const blocker = createServer();
  blocker.listen(0, "0.0.0.0");
  await once(blocker, "listening");
  t.after(() => blocker.close());
  const taken = (blocker.address() as { port: number }).port;

  const child = startCli([
    "proxy", "-service", "web", "-service-addr", "127.0.0.1:9", "-register",
    "-sidecar-min-port", String(taken), "-sidecar-max-port", String(taken + 20),
    "-http-addr", mesh.agent.address, "-log-json",
  ]);
  t.after(async () => {
    child.proc.kill("SIGTERM");
    await child.exited;
  });
  const picked = await child.waitFor(/picked a free public listener port/);
  const port = Number((JSON.parse(picked) as { listen: string }).listen.split(":")[1]);
  assert.ok(port > taken && port <= taken + 20, `picked ${port}, outside (${taken}, ${taken + 20}]`);

  await child.waitFor(/sidecar ready/);
  const svc = await getAgentService(mesh.mgmt, "web-proxy");
  assert.equal(svc.kind, "connect-proxy");
  assert.equal(svc.port, port);
  assert.equal(svc.proxy?.destinationServiceName, "web");
});

test("-register with the range set to 0 0 and no -listen is a usage error naming -listen", async () => {
  const child = startCli(["proxy", "-service", "web", "-service-addr", "127.0.0.1:9", "-register",
    "-sidecar-min-port", "0", "-sidecar-max-port", "0", "-http-addr", "127.0.0.1:1"]);
  assert.equal(await child.exited, 2);
  assert.match(child.lines.join("\n"), /listen: .*requires an explicit -listen/);
});
