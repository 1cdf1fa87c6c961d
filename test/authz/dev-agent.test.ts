// The authorizer against the in-process dev agent: real intentions, real authorize decisions,
// ACLs on with default deny.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { createAgentClient, type AgentClient, type AgentConfig, type SpiffeUri } from "../../src/agent/index.js";
import { createAuthorizer } from "../../src/authz/index.js";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { captureLog } from "../support/log-capture.js";

const SERIAL = "01:02:03";

async function devAgent(t: TestContext) {
  const dev = await startDevAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  t.after(() => dev.stop());
  const [host, port] = dev.address.split(":");
  const config = (token: string): AgentConfig => ({
    address: { scheme: "http", host: host!, port: Number(port), pathPrefix: "" },
    tls: { verify: true },
    token,
  });
  const { log } = captureLog({ level: "debug" });
  const admin = createAgentClient(config(dev.managementToken), { log });
  t.after(() => admin.close());
  const uri = (service: string) => `spiffe://${dev.trustDomain}/ns/default/dc/${dev.datacenter}/svc/${service}` as SpiffeUri;
  const setIntention = (source: string, action: "allow" | "deny") =>
    admin.request({
      method: "PUT",
      path: "/v1/connect/intentions/exact",
      query: { source, destination: "api" },
      body: { Action: action },
    });
  return { dev, config, uri, setIntention };
}

function authorizerFor(t: TestContext, agent: AgentClient) {
  const captured = captureLog({ level: "debug" });
  const authz = createAuthorizer(agent, { log: captured.log, now: Date.now }, { target: "api", maxStaleMs: 60_000, revokeLive: true });
  t.after(() => authz.close());
  return { authz, captured };
}

test("dev agent: intentions decide, and a deny intention revokes a cached allow", async (t) => {
  const { dev, config, uri, setIntention } = await devAgent(t);
  await setIntention("web", "allow");
  const agent = createAgentClient(config(dev.managementToken), { log: captureLog({ level: "debug" }).log });
  t.after(() => agent.close());
  const { authz } = authorizerFor(t, agent);

  assert.equal(await authz.decide(uri("web"), SERIAL), "allow");
  assert.equal(await authz.decide(uri("db"), SERIAL), "denied", "no intention + ACL default deny");

  const revoked = new Promise<SpiffeUri>((resolve) => authz.onRevoke(resolve));
  await setIntention("web", "deny");
  assert.equal(await revoked, uri("web"));
  assert.equal(authz.peek(uri("web")), "denied");
});

test("dev agent: a token the agent does not know gets authz_unavailable, never allow", async (t) => {
  const { config, uri, setIntention } = await devAgent(t);
  await setIntention("web", "allow");
  const agent = createAgentClient(config("00000000-0000-4000-8000-000000000000"), { log: captureLog({ level: "debug" }).log });
  t.after(() => agent.close());
  const { authz, captured } = authorizerFor(t, agent);

  assert.equal(await authz.decide(uri("web"), SERIAL), "authz_unavailable");
  assert.equal(await authz.decide(uri("db"), SERIAL), "authz_unavailable");
  assert.equal(captured.count("authorize refused the sidecar's token"), 1);
});
