import assert from "node:assert/strict";
import { createServer } from "node:net";
import { once } from "node:events";
import { test } from "node:test";
import { getAgentService, registerService } from "../../src/agent/index.js";
import { startCli } from "../e2e/child.js";
import { startMesh } from "../e2e/mesh.js";

test("-register without -listen takes the lowest port of the range that is free here and that the agent gave no service", async (t) => {
  const mesh = await startMesh(t);
  // The first port of a private range is in use on this host; the second is the port the agent gave
  // another sidecar (registered, not listening yet): the proxy must skip both.
  const blocker = createServer();
  blocker.listen(0, "0.0.0.0");
  await once(blocker, "listening");
  t.after(() => blocker.close());
  const taken = (blocker.address() as { port: number }).port;
  await registerService(mesh.mgmt, { Name: "api", Port: 9, Connect: { SidecarService: { Port: taken + 1 } } });

  const child = startCli([
    "proxy", "-service", "web", "-service-addr", "127.0.0.1:9", "-register",
    "-sidecar-min-port", String(taken), "-sidecar-max-port", String(taken + 20),
    "-http-addr", mesh.agent.address, "-token", mesh.agent.managementToken, "-log-json",
  ]);
  t.after(async () => {
    child.proc.kill("SIGTERM");
    await child.exited;
  });
  const picked = JSON.parse(await child.waitFor(/picked a free public listener port/)) as { listen: string; assignedByAgent: number[] };
  const port = Number(picked.listen.split(":")[1]);
  assert.deepEqual(picked.assignedByAgent, [taken + 1]);
  assert.ok(port > taken + 1 && port <= taken + 20, `picked ${port}, outside (${taken + 1}, ${taken + 20}]`);

  await child.waitFor(/sidecar ready/);
  const svc = await getAgentService(mesh.mgmt, "web-sidecar-proxy");
  assert.equal(svc.kind, "connect-proxy");
  assert.equal(svc.service, "web-sidecar-proxy");
  assert.equal(svc.port, port);
  assert.equal(svc.proxy?.destinationServiceName, "web");
});

test("-register with the range set to 0 0 and no -listen is a usage error naming -listen", async () => {
  const child = startCli(["proxy", "-service", "web", "-service-addr", "127.0.0.1:9", "-register",
    "-sidecar-min-port", "0", "-sidecar-max-port", "0", "-http-addr", "127.0.0.1:1"]);
  assert.equal(await child.exited, 2);
  assert.match(child.lines.join("\n"), /listen: .*requires an explicit -listen/);
});
