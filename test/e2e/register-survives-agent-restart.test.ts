import assert from "node:assert/strict";
import { test } from "node:test";
import { getAgentService, createAgentClient, resolveAgentConfig, AgentError } from "../../src/agent/index.js";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { pickFreePort } from "../../src/net/index.js";
import { leaseSidecarRange } from "../support/ports.js";
import { startCli } from "./child.js";
import { quietLogger, startEchoApp } from "./mesh.js";

test("self-registration survives a dev-agent restart: the proxy service comes back within the heartbeat interval", async (t) => {
  const port = await pickFreePort();
  const addr = `127.0.0.1:${port}`;
  const range = await leaseSidecarRange(t);
  const agentOpts = { httpAddr: addr, sidecarMinPort: range.min, sidecarMaxPort: range.max };
  let agent = await startDevAgent(agentOpts);
  t.after(() => agent.stop());
  const app = await startEchoApp(t);
  const listen = await pickFreePort();
  const child = startCli(["proxy", "-service", "web", "-service-addr", `127.0.0.1:${app.port}`, "-listen", `127.0.0.1:${listen}`,
    "-register", "-http-addr", addr, "-log-json"]);
  t.after(async () => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
    await child.exited;
  });
  await child.waitFor(/"msg":"sidecar ready"/);
  const client = createAgentClient(resolveAgentConfig({ httpAddr: addr }, {}), { log: quietLogger() });
  t.after(() => client.close());
  assert.equal((await getAgentService(client, "web-sidecar-proxy")).port, listen);

  // A restarted agent has lost every local registration (the dev agent keeps nothing, like a wiped data dir).
  await agent.stop();
  agent = await startDevAgent(agentOpts);
  await assert.rejects(getAgentService(client, "web-sidecar-proxy"), (e: unknown) => e instanceof AgentError && e.code === "not_found");

  // The next heartbeat gets a 404 and re-registers; wait for the log line rather than sleeping.
  await child.waitFor(/"msg":"proxy re-registered"/);
  const back = await getAgentService(client, "web-sidecar-proxy");
  assert.equal(back.kind, "connect-proxy");
  assert.equal(back.port, listen);
  assert.equal(back.proxy?.destinationServiceName, "web");
});
