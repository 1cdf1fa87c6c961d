import assert from "node:assert/strict";
import { test } from "node:test";
import type { TestContext } from "node:test";
import {
  AgentError,
  agentServiceWatch,
  authorize,
  caRootsWatch,
  checkIntention,
  createAgentClient,
  deregisterService,
  executePreparedQuery,
  findSidecarFor,
  getAclPolicy,
  getAgentSelf,
  getAgentService,
  getCaRoots,
  getIntentionMatch,
  getTokenSelf,
  healthConnectWatch,
  intentionMatchWatch,
  leafWatch,
  listAgentServices,
  registerService,
  updateTtlCheck,
  watch,
} from "../../src/agent/index.js";
import type { AgentClient } from "../../src/agent/index.js";
import { ConfigError } from "../../src/net/index.js";
import { httpConfig, sendJson, sendText, silentLog, startHttpServer } from "./fixtures.js";
import type { Handler, TestServer } from "./fixtures.js";

async function agentWith(t: TestContext, handler: Handler): Promise<{ agent: AgentClient; server: TestServer }> {
  const server = await startHttpServer(t, handler);
  const agent = createAgentClient(httpConfig(server, { token: "tok" }), { log: silentLog });
  t.after(() => agent.destroy());
  return { agent, server };
}

const url = (server: TestServer, i: number) => new URL(server.requests[i]?.url ?? "", "http://x");

const proxy = (id: string, destId: string, kind = "connect-proxy") => ({
  Kind: kind,
  ID: id,
  Service: id,
  Tags: [],
  Meta: {},
  Port: 21000,
  Address: "",
  Proxy: { DestinationServiceName: destId, DestinationServiceID: destId, LocalServicePort: 8080, MeshGateway: {}, Expose: {} },
  Datacenter: "dc1",
});

test("findSidecarFor picks the single connect-proxy whose DestinationServiceID matches, ignoring case", async (t) => {
  const { agent, server } = await agentWith(t, (_req, res) =>
    sendJson(res, 200, {
      web: { ID: "web", Service: "web", Port: 8080, Tags: [], Meta: {} },
      "Web-sidecar-proxy": proxy("Web-sidecar-proxy", "Web"),
      "api-sidecar-proxy": proxy("api-sidecar-proxy", "api"),
      "web-gateway": proxy("web-gateway", "web", "mesh-gateway"),
    }),
  );
  const found = await findSidecarFor(agent, "web");
  assert.equal(found.id, "Web-sidecar-proxy");
  assert.equal(found.proxy?.localServicePort, 8080);
  assert.equal(url(server, 0).pathname, "/v1/agent/services");
  assert.equal(server.requests[0]?.method, "GET");
});

test("findSidecarFor fails with Consul's texts for none and for several", async (t) => {
  const { agent } = await agentWith(t, (req, res) =>
    sendJson(
      res,
      200,
      req.url?.includes("filter") ? {} : { "a-proxy": proxy("a-proxy", "web"), "b-proxy": proxy("b-proxy", "WEB"), "db-proxy": proxy("db-proxy", "db-2") },
    ),
  );
  await assert.rejects(findSidecarFor(agent, "db"), (e: unknown) => {
    assert.ok(e instanceof AgentError);
    assert.equal(e.code, "not_found");
    assert.equal(e.message, "No sidecar proxy registered for db");
    return true;
  });
  await assert.rejects(findSidecarFor(agent, "web"), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.ok(e.message.includes("More than one sidecar proxy registered for web.\n"), e.message);
    assert.ok(e.message.includes("Start proxy with -proxy-id and one of the following IDs: a-proxy, b-proxy"), e.message);
    return true;
  });
});

test("authorize POSTs PascalCase fields and parses the verdict", async (t) => {
  const { agent, server } = await agentWith(t, (_req, res) =>
    sendJson(res, 200, { Authorized: false, Reason: "Default behavior configured by ACLs" }),
  );
  const uri = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web";
  const verdict = await authorize(agent, { target: "db", clientCertUri: uri, clientCertSerial: "04:00:01" });
  assert.deepEqual(verdict, { authorized: false, reason: "Default behavior configured by ACLs" });
  const req = server.requests[0];
  assert.equal(req?.method, "POST");
  assert.equal(url(server, 0).pathname, "/v1/agent/connect/authorize");
  assert.equal(req?.headers["content-type"], "application/json");
  assert.equal(req?.headers["x-consul-token"], "tok");
  assert.deepEqual(JSON.parse(req?.body ?? ""), { Target: "db", ClientCertURI: uri, ClientCertSerial: "04:00:01" });
});

test("authorize: a malformed verdict is bad_body naming the endpoint and field", async (t) => {
  const { agent } = await agentWith(t, (_req, res) => sendJson(res, 200, { Authorized: "yes" }));
  await assert.rejects(
    authorize(agent, { target: "db", clientCertUri: "spiffe://x", clientCertSerial: "01" }),
    (e: unknown) =>
      e instanceof AgentError && e.code === "bad_body" && e.message.startsWith("POST /v1/agent/connect/authorize: bad body: authorize.Authorized"),
  );
});

test("getAgentService reads one registration; an unknown ID is not_found", async (t) => {
  const { agent, server } = await agentWith(t, (req, res) =>
    req.url === "/v1/agent/service/web-sidecar-proxy"
      ? sendJson(res, 200, { ...proxy("web-sidecar-proxy", "web"), ContentHash: "abc123" }, { "X-Consul-ContentHash": "abc123" })
      : sendText(res, 404, "unknown service ID: nope"),
  );
  const svc = await getAgentService(agent, "web-sidecar-proxy");
  assert.equal(svc.contentHash, "abc123");
  await assert.rejects(getAgentService(agent, "nope"), (e: unknown) => e instanceof AgentError && e.code === "not_found");
  assert.equal(server.requests.length, 2);
});

test("the doctor's one-shot reads use Consul's paths and never block; audit bodies are read loosely", async (t) => {
  const { agent, server } = await agentWith(t, (req, res) => {
    const path = new URL(req.url ?? "", "http://x").pathname;
    if (path === "/v1/agent/connect/ca/roots") return sendJson(res, 200, { TrustDomain: "T.consul", Roots: null }, { "X-Consul-Default-ACL-Policy": "deny" });
    if (path === "/v1/connect/intentions/match") return sendJson(res, 200, { web: [] });
    if (path === "/v1/connect/intentions/check") return sendJson(res, 200, { Allowed: false });
    if (path === "/v1/acl/token/self") return sendJson(res, 200, { AccessorID: "a1", Policies: [{ ID: "p1", Name: "web" }], Roles: "not a list" });
    if (path === "/v1/agent/self") return sendJson(res, 200, { Config: { Version: "1.21.0" }, DebugConfig: { ConnectSidecarMinPort: 21000 } });
    if (path === "/v1/acl/policy/p%2F1") return sendJson(res, 200, { Name: "web", Rules: 'service "web" { policy = "write" }' });
    return sendText(res, 404, "no");
  });
  assert.deepEqual(await getCaRoots(agent), { roots: { activeRootId: "", trustDomain: "t.consul", roots: [] }, defaultAclPolicy: "deny" });
  assert.deepEqual(await getIntentionMatch(agent, "web"), []);
  assert.equal(await checkIntention(agent, { source: "probe", destination: "web" }), false);
  const token = await getTokenSelf(agent);
  assert.deepEqual([token.accessorId, token.policies, token.roles], ["a1", [{ id: "p1", name: "web" }], []]);
  const self = await getAgentSelf(agent);
  assert.deepEqual([self.version, self.sidecarMinPort, self.sidecarMaxPort, self.aclsEnabled], ["1.21.0", 21000, undefined, undefined]);
  assert.deepEqual(await getAclPolicy(agent, "p/1"), { id: "p/1", name: "web", rules: 'service "web" { policy = "write" }' });
  assert.deepEqual(
    server.requests.map((r) => r.url),
    [
      "/v1/agent/connect/ca/roots",
      "/v1/connect/intentions/match?by=destination&name=web",
      "/v1/connect/intentions/check?source=probe&destination=web",
      "/v1/acl/token/self",
      "/v1/agent/self",
      "/v1/acl/policy/p%2F1",
    ],
  );
});

test("checkIntention: an answer without a boolean Allowed is bad_body naming the endpoint", async (t) => {
  const { agent } = await agentWith(t, (_req, res) => sendJson(res, 200, {}));
  await assert.rejects(
    checkIntention(agent, { source: "probe", destination: "web" }),
    (e: unknown) => e instanceof AgentError && e.code === "bad_body" && e.message.startsWith("GET /v1/connect/intentions/check: bad body: check.Allowed"),
  );
});

test("listAgentServices passes a filter", async (t) => {
  const { agent, server } = await agentWith(t, (_req, res) => sendJson(res, 200, { web: { ID: "web", Service: "web" } }));
  const map = await listAgentServices(agent, { filter: 'Kind == "connect-proxy"' });
  assert.equal(map.get("web")?.service, "web");
  assert.equal(url(server, 0).searchParams.get("filter"), 'Kind == "connect-proxy"');
});

test("register, deregister and TTL update use PUT with Consul's paths and bodies", async (t) => {
  const { agent, server } = await agentWith(t, (req, res) =>
    req.url?.includes("missing")
      ? sendText(res, 404, 'Unknown check ID "missing". Ensure that the check ID is passed, not the check name.')
      : void res.end(),
  );
  const def = { Name: "web-proxy", Kind: "connect-proxy", Port: 21000, Proxy: { DestinationServiceName: "web" } };
  await registerService(agent, def);
  await updateTtlCheck(agent, "web-proxy-ttl", "warning", "slow upstream");
  await updateTtlCheck(agent, "service:web:1", "passing");
  await deregisterService(agent, "web-proxy");
  await assert.rejects(updateTtlCheck(agent, "missing", "critical"), (e: unknown) => e instanceof AgentError && e.code === "not_found");
  const seen = server.requests.map((r) => [r.method, r.url, r.body === "" ? undefined : JSON.parse(r.body)]);
  assert.deepEqual(seen, [
    ["PUT", "/v1/agent/service/register", def],
    ["PUT", "/v1/agent/check/update/web-proxy-ttl", { Status: "warning", Output: "slow upstream" }],
    ["PUT", "/v1/agent/check/update/service%3Aweb%3A1", { Status: "passing", Output: "" }],
    ["PUT", "/v1/agent/service/deregister/web-proxy", undefined],
    ["PUT", "/v1/agent/check/update/missing", { Status: "critical", Output: "" }],
  ]);
});

test("executePreparedQuery asks for connect endpoints, stale, in a datacenter", async (t) => {
  const { agent, server } = await agentWith(t, (_req, res) =>
    sendJson(res, 200, {
      Service: "db",
      Nodes: [
        {
          Node: { ID: "n1", Node: "node1", Address: "10.0.0.7", Datacenter: "dc2" },
          Service: { ID: "db-1", Service: "db", Port: 5432, Connect: { Native: true } },
          Checks: [],
        },
      ],
      DNS: { TTL: "" },
      Datacenter: "dc2",
    }),
  );
  const nodes = await executePreparedQuery(agent, "db-query", { datacenter: "dc2" });
  assert.equal(nodes[0]?.node.address, "10.0.0.7");
  const u = url(server, 0);
  assert.equal(u.pathname, "/v1/query/db-query/execute");
  assert.equal(u.searchParams.get("connect"), "true");
  assert.equal(u.searchParams.get("stale"), "");
  assert.equal(u.searchParams.get("dc"), "dc2");
});

test("the watch specs use Consul's paths, queries and modes", () => {
  assert.equal(caRootsWatch.path, "/v1/agent/connect/ca/roots");
  assert.equal(caRootsWatch.mode, "index");
  assert.equal(leafWatch("web").path, "/v1/agent/connect/ca/leaf/web");
  assert.equal(leafWatch("web").mode, "index");
  assert.equal(agentServiceWatch("web-sidecar-proxy").path, "/v1/agent/service/web-sidecar-proxy");
  assert.equal(agentServiceWatch("x").mode, "hash");
  assert.deepEqual(healthConnectWatch("db", {}).query, { passing: "1" });
  assert.deepEqual(healthConnectWatch("db", { datacenter: "dc2" }).query, { passing: "1", dc: "dc2" });
  assert.equal(healthConnectWatch("db", {}).path, "/v1/health/connect/db");
  assert.deepEqual(intentionMatchWatch("db").query, { by: "destination", name: "db" });
  assert.equal(intentionMatchWatch("db").path, "/v1/connect/intentions/match");
});

test("intentionMatchWatch and agentServiceWatch deliver parsed values through watch()", async (t) => {
  const { agent, server } = await agentWith(t, (req, res) => {
    if (req.url?.startsWith("/v1/connect/intentions/match")) {
      return sendJson(res, 200, { db: [{ SourceName: "web", DestinationName: "db", Action: "deny", Precedence: 9 }] }, { "X-Consul-Index": "4" });
    }
    sendJson(res, 200, { ...proxy("web-sidecar-proxy", "web"), ContentHash: "f00d" }, { "X-Consul-ContentHash": "f00d" });
  });
  const ctl = new AbortController();
  t.after(() => ctl.abort());
  for await (const list of watch(agent, intentionMatchWatch("db"), { signal: ctl.signal })) {
    assert.equal(list[0]?.action, "deny");
    break;
  }
  for await (const svc of watch(agent, agentServiceWatch("web-sidecar-proxy"), { signal: ctl.signal })) {
    assert.equal(svc.proxy?.destinationServiceName, "web");
    break;
  }
  assert.equal(url(server, 0).searchParams.get("wait"), "300000ms");
  assert.equal(url(server, 1).pathname, "/v1/agent/service/web-sidecar-proxy");
});
