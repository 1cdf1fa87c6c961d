// The catalog and health list reads (Consul's api-docs catalog.mdx, health.mdx, agent "List Members"):
// shapes, blocking, filters and ACL filtering under default deny, over raw HTTP and the npm `consul` client.
import assert from "node:assert/strict";
import { test } from "node:test";
import Consul from "consul";
import { createToken, register, startAgent, type TestAgent } from "./catalog-fixture.js";

async function seed(agent: TestAgent, token?: string): Promise<void> {
  const opts = token !== undefined ? { token } : {};
  await register(agent, { Name: "web", ID: "web-1", Port: 8080, Tags: ["v1", "blue"], Check: { CheckID: "web-ttl", TTL: "1h" } }, opts);
  await register(agent, { Name: "web", ID: "web-2", Port: 8081, Tags: ["v1", "green"] }, opts);
  await register(agent, { Name: "db", Port: 5432, Check: { CheckID: "db-ttl", TTL: "1h", Status: "passing" } }, opts);
}

function assertMetaHeaders(res: { headers: Headers }): void {
  assert.ok(Number(res.headers.get("x-consul-index")) >= 1);
  assert.equal(res.headers.get("x-consul-knownleader"), "true");
  assert.equal(res.headers.get("x-consul-lastcontact"), "0");
}

test("catalog reads: services, nodes, node, node-services and datacenters answer Consul's shapes", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);

  const services = await agent.req("/v1/catalog/services");
  assert.equal(services.status, 200);
  assertMetaHeaders(services);
  assert.deepEqual(services.json, { db: [], web: ["blue", "green", "v1"] });

  const nodes = await agent.req("/v1/catalog/nodes");
  assertMetaHeaders(nodes);
  assert.equal(nodes.json.length, 1);
  assert.deepEqual(Object.keys(nodes.json[0]), ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"]);
  assert.equal(nodes.json[0].Node, "node1");

  const node = await agent.req("/v1/catalog/node/node1");
  assertMetaHeaders(node);
  assert.equal(node.json.Node.Node, "node1");
  assert.deepEqual(Object.keys(node.json.Services).sort(), ["db", "web-1", "web-2"]);
  assert.equal(node.json.Services["web-1"].Service, "web");
  assert.deepEqual(node.json.Services["db"].Tags, []);
  assert.deepEqual(node.json.Services["db"].Proxy, { Mode: "", MeshGateway: {}, Expose: {} });

  const list = await agent.req("/v1/catalog/node-services/node1");
  assert.equal(list.json.Node.Node, "node1");
  assert.deepEqual(list.json.Services.map((s: { ID: string }) => s.ID), ["db", "web-1", "web-2"]);

  // an unknown node: `null` from /node, a zero NodeServiceList from /node-services
  assert.equal((await agent.req("/v1/catalog/node/nope")).text, "null");
  assert.deepEqual((await agent.req("/v1/catalog/node-services/nope")).json, { Node: null, Services: null });
  const missing = await agent.req("/v1/catalog/node/");
  assert.equal(missing.status, 400);
  assert.equal(missing.text, "Missing node name");

  const dcs = await agent.req("/v1/catalog/datacenters");
  assert.deepEqual(dcs.json, ["dc1"]);
  assert.equal((await agent.req("/v1/catalog/services?dc=dc9")).status, 500);
});

test("health reads: checks of a service, of a node and by state include serfHealth where Consul shows it", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);

  const web = await agent.req("/v1/health/checks/web");
  assertMetaHeaders(web);
  assert.deepEqual(web.json.map((c: { CheckID: string }) => c.CheckID), ["web-ttl"]);
  assert.equal(web.json[0].ServiceName, "web");
  assert.equal(web.json[0].Status, "critical");
  assert.deepEqual((await agent.req("/v1/health/checks/nope")).json, []);

  const node = await agent.req("/v1/health/node/node1");
  // the state store's order: by node, then check ID
  assert.deepEqual(node.json.map((c: { CheckID: string }) => c.CheckID), ["db-ttl", "serfHealth", "web-ttl"]);
  assert.deepEqual((await agent.req("/v1/health/node/other")).json, []);

  const ids = async (state: string) => ((await agent.req(`/v1/health/state/${state}`)).json as Array<{ CheckID: string }>).map((c) => c.CheckID);
  assert.deepEqual(await ids("any"), ["db-ttl", "serfHealth", "web-ttl"]);
  assert.deepEqual(await ids("passing"), ["db-ttl", "serfHealth"]);
  assert.deepEqual(await ids("critical"), ["web-ttl"]);
  assert.deepEqual(await ids("warning"), []);
  const noState = await agent.req("/v1/health/state/");
  assert.equal(noState.status, 400);
  assert.equal(noState.text, "Missing check state");
});

test("catalog and health reads block: a change wakes the query, an unrelated write does not", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);
  const first = await agent.req("/v1/catalog/services");
  const index = first.headers.get("x-consul-index");
  const checksFirst = await agent.req("/v1/health/state/critical");

  const blocked = agent.req(`/v1/catalog/services?index=${index}&wait=10m`);
  const blockedChecks = agent.req(`/v1/health/state/critical?index=${checksFirst.headers.get("x-consul-index")}&wait=10m`);
  // unrelated: an intention write moves the global index but not the catalog's tables
  const unrelated = await agent.req("/v1/connect/intentions/exact?source=a&destination=b", { method: "PUT", body: { Action: "allow" } });
  assert.equal(unrelated.status, 200);
  await register(agent, { Name: "cache", Port: 6379, Check: { CheckID: "cache-ttl", TTL: "1h" } });

  const woke = await blocked;
  assert.ok(Number(woke.headers.get("x-consul-index")) > Number(index));
  assert.ok("cache" in woke.json, "the answer is the one after the registration, not after the intention write");
  const wokeChecks = await blockedChecks;
  assert.ok(wokeChecks.json.some((c: { CheckID: string }) => c.CheckID === "cache-ttl"));
});

test("every catalog and health list read blocks until a write it reads wakes it", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);
  // [path, the write that changes its answer, what the woken answer shows]
  const cases: Array<[string, () => Promise<unknown>, (json: any) => boolean]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ["/v1/catalog/nodes", () => agent.req("/v1/catalog/register", { method: "PUT", body: { Node: "ext1", Address: "10.0.0.9" } }), (j) => j.length === 2],
    ["/v1/catalog/node/node1", () => register(agent, { Name: "api", Port: 9000 }), (j) => "api" in j.Services],
    ["/v1/catalog/node-services/node1", () => register(agent, { Name: "api2", Port: 9001 }), (j) => j.Services.some((s: { ID: string }) => s.ID === "api2")],
    ["/v1/health/checks/web", () => agent.req("/v1/agent/check/pass/web-ttl", { method: "PUT" }), (j) => j[0].Status === "passing"],
    ["/v1/health/node/node1", () => agent.req("/v1/agent/check/register", { method: "PUT", body: { CheckID: "disk", Name: "disk", TTL: "1h" } }), (j) => j.some((c: { CheckID: string }) => c.CheckID === "disk")],
  ];
  for (const [path, write, shows] of cases) {
    const first = await agent.req(path);
    const blocked = agent.req(`${path}?index=${first.headers.get("x-consul-index")}&wait=10m`);
    await write();
    const woke = await blocked;
    assert.ok(shows(woke.json), `${path} woke with the new answer`);
    assert.ok(Number(woke.headers.get("x-consul-index")) > Number(first.headers.get("x-consul-index")), path);
  }
});

test("catalog and health reads: ?filter, ?node-meta and members' ?filter select as Consul does", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);
  const f = (expr: string) => encodeURIComponent(expr);

  assert.deepEqual((await agent.req(`/v1/catalog/services?filter=${f('ServiceTags contains "green"')}`)).json, { web: ["green", "v1"] });
  assert.deepEqual((await agent.req("/v1/catalog/services?node-meta=consul-network-segment:")).json, { db: [], web: ["blue", "green", "v1"] });
  assert.deepEqual((await agent.req("/v1/catalog/services?node-meta=env:prod")).json, {});
  assert.deepEqual((await agent.req("/v1/catalog/nodes?node-meta=env:prod")).json, []);
  assert.equal((await agent.req(`/v1/catalog/nodes?filter=${f('Node == "node1"')}`)).json.length, 1);
  assert.equal((await agent.req(`/v1/catalog/nodes?filter=${f('Node == "other"')}`)).json.length, 0);
  const bad = await agent.req(`/v1/catalog/nodes?filter=${f('Nope == "x"')}`);
  assert.equal(bad.status, 400);
  assert.match(bad.text, /^Failed to create filter: /);
  assert.deepEqual((await agent.req(`/v1/health/state/any?filter=${f('ServiceName == "db"')}`)).json.map((c: { CheckID: string }) => c.CheckID), ["db-ttl"]);
  assert.deepEqual((await agent.req(`/v1/catalog/node-services/node1?filter=${f('Service == "web"')}`)).json.Services.map((s: { ID: string }) => s.ID), ["web-1", "web-2"]);

  const members = await agent.req("/v1/agent/members");
  assert.equal(members.status, 200);
  assert.equal(members.headers.get("x-consul-index"), null, "agent-local: no index header");
  assert.equal(members.json.length, 1);
  assert.deepEqual(Object.keys(members.json[0]), [
    "Name", "Addr", "Port", "Tags", "Status", "ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur",
  ]);
  assert.equal(members.json[0].Name, "node1");
  assert.equal(members.json[0].Status, 1);
  assert.equal(members.json[0].Tags.dc, "dc1");
  const wan = await agent.req("/v1/agent/members?wan=1");
  assert.equal(wan.json[0].Name, "node1.dc1");
  assert.deepEqual((await agent.req(`/v1/agent/members?filter=${f('Name == "x"')}`)).json, []);
});

test("catalog and health reads under default deny: lists drop what the token cannot read and never answer 403", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  await seed(agent, agent.managementToken);

  // anonymous: every list is empty (200), no filtered header without a token
  const anon = await agent.req("/v1/catalog/services");
  assert.equal(anon.status, 200);
  assert.deepEqual(anon.json, {});
  assert.equal(anon.headers.get("x-consul-results-filtered-by-acls"), null);
  assert.deepEqual((await agent.req("/v1/catalog/nodes")).json, []);
  assert.equal((await agent.req("/v1/catalog/node/node1")).text, "null");
  assert.deepEqual((await agent.req("/v1/health/state/any")).json, []);
  assert.deepEqual((await agent.req("/v1/health/checks/web")).json, []);
  assert.deepEqual((await agent.req("/v1/agent/members")).json, []);

  const token = await createToken(agent, { rules: 'service "web" { policy = "read" }\nnode_prefix "" { policy = "read" }' });
  const seen = await agent.req("/v1/catalog/services", { token });
  assert.deepEqual(seen.json, { web: ["blue", "green", "v1"] });
  assert.equal(seen.headers.get("x-consul-results-filtered-by-acls"), "true");
  const node = await agent.req("/v1/catalog/node/node1", { token });
  assert.deepEqual(Object.keys(node.json.Services).sort(), ["web-1", "web-2"]);
  const checks = await agent.req("/v1/health/state/any", { token });
  assert.deepEqual(checks.json.map((c: { CheckID: string }) => c.CheckID), ["serfHealth", "web-ttl"]);
  assert.equal(checks.headers.get("x-consul-results-filtered-by-acls"), "true");
  assert.equal((await agent.req("/v1/agent/members", { token })).json.length, 1);
  const all = await agent.req("/v1/catalog/services", { token: agent.managementToken });
  assert.deepEqual(Object.keys(all.json), ["db", "web"]);
  assert.equal(all.headers.get("x-consul-results-filtered-by-acls"), null);
});

test("the consul npm client reads the catalog, health and members", async (t) => {
  const agent = await startAgent(t);
  await seed(agent);
  const [host, port] = agent.address.split(":");
  const consul = new Consul({ host: host!, port: Number(port) });
  t.after(() => consul.destroy());

  assert.deepEqual(await consul.catalog.service.list(), { db: [], web: ["blue", "green", "v1"] });
  assert.deepEqual(await consul.catalog.datacenters(), ["dc1"]);
  const nodes = (await consul.catalog.node.list()) as Array<{ Node: string }>;
  assert.deepEqual(nodes.map((n) => n.Node), ["node1"]);
  const node = (await consul.catalog.node.services("node1")) as { Node: { Node: string }; Services: Record<string, unknown> };
  assert.deepEqual(Object.keys(node.Services).sort(), ["db", "web-1", "web-2"]);
  const checks = (await consul.health.checks("web")) as Array<{ CheckID: string }>;
  assert.deepEqual(checks.map((c) => c.CheckID), ["web-ttl"]);
  const onNode = (await consul.health.node("node1")) as Array<{ CheckID: string }>;
  assert.ok(onNode.some((c) => c.CheckID === "serfHealth"));
  const critical = (await consul.health.state("critical")) as Array<{ CheckID: string }>;
  assert.deepEqual(critical.map((c) => c.CheckID), ["web-ttl"]);
  const members = (await consul.agent.members()) as Array<{ Name: string }>;
  assert.deepEqual(members.map((m) => m.Name), ["node1"]);
});
