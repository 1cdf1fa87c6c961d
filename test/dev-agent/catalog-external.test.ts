// PUT /v1/catalog/register and /v1/catalog/deregister (Consul's api-docs catalog.mdx; Catalog.Register
// and Deregister in agent/consul/catalog_endpoint.go): external nodes with catalog-only services and
// checks, seen by every catalog and health read, over raw HTTP and the npm `consul` client.
import assert from "node:assert/strict";
import { test } from "node:test";
import Consul from "consul";
import { createToken, startAgent, type TestAgent } from "./catalog-fixture.js";

const catalogPut = (agent: TestAgent, path: "register" | "deregister", body: unknown, token?: string) =>
  agent.req(`/v1/catalog/${path}`, { method: "PUT", body, ...(token !== undefined ? { token } : {}) });

const REDIS = {
  Node: "ext1",
  Address: "10.1.2.3",
  NodeMeta: { env: "prod" },
  TaggedAddresses: { wan: "198.51.100.3" },
  Service: { Service: "redis", Port: 6379, Tags: ["primary"] },
  Check: { Name: "redis alive", Status: "passing", ServiceID: "redis", Definition: { TCP: "10.1.2.3:6379", IntervalDuration: "10s" } },
};

test("a registered external node, its catalog-only service and check show up in every catalog and health read", async (t) => {
  const agent = await startAgent(t);
  const reg = await catalogPut(agent, "register", REDIS);
  assert.deepEqual([reg.status, reg.json], [200, true]);

  const nodes = (await agent.req("/v1/catalog/nodes")).json;
  assert.deepEqual(nodes.map((n: { Node: string }) => n.Node), ["ext1", "node1"]);
  assert.deepEqual(nodes[0], {
    ID: "", Node: "ext1", Address: "10.1.2.3", Datacenter: "dc1", TaggedAddresses: { wan: "198.51.100.3" }, Meta: { env: "prod" },
    CreateIndex: nodes[0].CreateIndex, ModifyIndex: nodes[0].ModifyIndex,
  });
  assert.deepEqual((await agent.req("/v1/catalog/nodes?node-meta=env:prod")).json.map((n: { Node: string }) => n.Node), ["ext1"]);

  const node = (await agent.req("/v1/catalog/node/ext1")).json;
  assert.deepEqual(Object.keys(node.Services), ["redis"]);
  assert.equal(node.Services.redis.Port, 6379);
  assert.deepEqual((await agent.req("/v1/catalog/services")).json, { redis: ["primary"] });

  const svc = (await agent.req("/v1/catalog/service/redis")).json;
  assert.deepEqual([svc.length, svc[0].Node, svc[0].Address, svc[0].ServiceID, svc[0].NodeMeta], [1, "ext1", "10.1.2.3", "redis", { env: "prod" }]);

  assert.equal((await agent.req("/v1/health/service/redis?node-meta=env:prod")).json.length, 1);
  assert.deepEqual((await agent.req("/v1/health/service/redis?node-meta=env:dev")).json, []);
  assert.deepEqual((await agent.req("/v1/catalog/service/redis?node-meta=env:dev")).json, []);
  const health = (await agent.req("/v1/health/service/redis?passing")).json;
  assert.equal(health.length, 1);
  assert.equal(health[0].Node.Node, "ext1");
  assert.deepEqual(health[0].Checks.map((c: { CheckID: string; Status: string; Node: string }) => [c.CheckID, c.Status, c.Node]), [["redis alive", "passing", "ext1"]]);
  assert.deepEqual(health[0].Checks[0].ServiceTags, ["primary"]);
  assert.deepEqual(health[0].Checks[0].Definition, { TCP: "10.1.2.3:6379", Interval: "10s" });

  const passing = (await agent.req("/v1/health/state/passing")).json;
  assert.deepEqual(passing.map((c: { Node: string; CheckID: string }) => `${c.Node}/${c.CheckID}`), ["ext1/redis alive", "node1/serfHealth"]);
  assert.deepEqual((await agent.req("/v1/health/node/ext1")).json.map((c: { CheckID: string }) => c.CheckID), ["redis alive"]);
  assert.deepEqual((await agent.req("/v1/health/checks/redis")).json.map((c: { Node: string }) => c.Node), ["ext1"]);

  // a check without a status starts critical; a node-level check has no service
  await catalogPut(agent, "register", { Node: "ext1", Address: "10.1.2.3", NodeMeta: { env: "prod" }, TaggedAddresses: { wan: "198.51.100.3" }, Check: { CheckID: "ext1-ping", Name: "ping" } });
  const critical = (await agent.req("/v1/health/state/critical")).json;
  assert.deepEqual(critical.map((c: { CheckID: string; ServiceID: string }) => [c.CheckID, c.ServiceID]), [["ext1-ping", ""]]);
  assert.deepEqual((await agent.req("/v1/health/service/redis?passing")).json, [], "the node's critical check fails the instance");
});

test("deregister removes a service with its checks, a check, or the whole node", async (t) => {
  const agent = await startAgent(t);
  await catalogPut(agent, "register", REDIS);
  await catalogPut(agent, "register", { Node: "ext1", Address: "10.1.2.3", SkipNodeUpdate: true, Service: { ID: "redis-2", Service: "redis", Port: 6380 }, Checks: [{ CheckID: "r2", Name: "r2", ServiceID: "redis-2", Status: "passing" }, { CheckID: "disk", Name: "disk", Status: "passing" }] });
  const ids = async () => (await agent.req("/v1/health/node/ext1")).json.map((c: { CheckID: string }) => c.CheckID);
  assert.deepEqual(await ids(), ["disk", "r2", "redis alive"]);

  assert.equal((await catalogPut(agent, "deregister", { Node: "ext1", ServiceID: "redis-2" })).json, true);
  assert.deepEqual(await ids(), ["disk", "redis alive"]);
  assert.deepEqual(Object.keys((await agent.req("/v1/catalog/node/ext1")).json.Services), ["redis"]);
  assert.equal((await catalogPut(agent, "deregister", { Node: "ext1", CheckID: "disk" })).json, true);
  assert.deepEqual(await ids(), ["redis alive"]);
  assert.equal((await catalogPut(agent, "deregister", { Node: "ext1" })).json, true);
  assert.equal((await agent.req("/v1/catalog/node/ext1")).text, "null");
  assert.deepEqual((await agent.req("/v1/catalog/services")).json, {});
  // deregistering what is not there is not an error
  assert.equal((await catalogPut(agent, "deregister", { Node: "ext1", ServiceID: "nope" })).json, true);
});

test("catalog register and deregister answer Consul's errors", async (t) => {
  const agent = await startAgent(t);
  const cases: Array<[string, unknown, number, string]> = [
    ["register", { Address: "10.0.0.1" }, 500, "Must provide node"],
    ["register", { Node: "ext1" }, 500, "Must provide address if SkipNodeUpdate is not set"],
    ["register", { Node: "ext1", Address: "10.0.0.1", ID: "abc" }, 500, "Bad node ID: uuid string is wrong length"],
    ["register", { Node: "ext1", Address: "10.0.0.1", Service: { ID: "x" } }, 500, "Must provide service name (Service.Service) when service ID is provided"],
    ["register", { Node: "ext1", Address: "10.0.0.1", Service: { Service: "x", Address: "0.0.0.0" } }, 500, "Invalid service address"],
    ["register", { Node: "ext1", Address: "10.0.0.1", Check: { CheckID: "c", Node: "other" } }, 500, "Node 'other' for check 'c' doesn't match register request node 'ext1'"],
    ["register", { Node: "ext1", Address: "10.0.0.1", Check: { CheckID: "c", ServiceID: "missing" } }, 500, "Unknown service ID 'missing' for check ID 'c'"],
    ["register", { Node: "ext1", Address: "10.0.0.1", Bogus: 1 }, 400, 'Request decode failed: json: unknown field "Bogus"'],
    ["register", { Node: "ext1", Address: "10.0.0.1", Datacenter: "dc9" }, 500, "No path to datacenter"],
    ["deregister", { ServiceID: "x" }, 500, "Must provide node"],
  ];
  for (const [path, body, status, text] of cases) {
    const res = await catalogPut(agent, path as "register", body);
    assert.deepEqual([res.status, res.text], [status, text], JSON.stringify(body));
  }
  assert.equal((await agent.req("/v1/catalog/register")).status, 405);
  assert.deepEqual((await agent.req("/v1/catalog/nodes")).json.map((n: { Node: string }) => n.Node), ["node1"], "nothing was stored");
});

test("catalog reads block on external registrations: a new instance wakes a health watch, an unrelated write does not", async (t) => {
  const agent = await startAgent(t);
  await catalogPut(agent, "register", REDIS);
  const first = await agent.req("/v1/health/service/redis");
  const blocked = agent.req(`/v1/health/service/redis?index=${first.headers.get("x-consul-index")}&wait=10m`);
  await agent.req("/v1/config", { method: "PUT", body: { Kind: "service-defaults", Name: "redis", Protocol: "tcp" } });
  await catalogPut(agent, "register", { Node: "ext2", Address: "10.1.2.4", Service: { Service: "redis", Port: 6379 } });
  const woke = await blocked;
  assert.deepEqual(woke.json.map((e: { Node: { Node: string } }) => e.Node.Node), ["ext1", "ext2"]);
});

test("catalog writes under default deny need node:write and service:write; reads drop nodes the token cannot read", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  const anon = await catalogPut(agent, "register", REDIS);
  assert.equal(anon.status, 403);
  assert.match(anon.text, /^Permission denied: anonymous token lacks permission 'service:write' on "redis"/);
  const serviceOnly = await createToken(agent, { rules: 'service "redis" { policy = "write" }' });
  const noNode = await catalogPut(agent, "register", REDIS, serviceOnly);
  assert.equal(noNode.status, 403);
  assert.match(noNode.text, /lacks permission 'node:write' on "ext1"/);
  const writer = await createToken(agent, { rules: 'service "redis" { policy = "write" }\nnode "ext1" { policy = "write" }' });
  assert.equal((await catalogPut(agent, "register", REDIS, writer)).json, true);
  // a service update that does not change the node needs no node:write
  assert.equal((await catalogPut(agent, "register", { ...REDIS, Check: undefined, Service: { Service: "redis", Port: 6390 } }, serviceOnly)).json, true);

  const reader = await createToken(agent, { rules: 'service_prefix "" { policy = "read" }\nnode "node1" { policy = "read" }' });
  assert.deepEqual((await agent.req("/v1/catalog/nodes", { token: reader })).json.map((n: { Node: string }) => n.Node), ["node1"]);
  assert.deepEqual((await agent.req("/v1/health/service/redis", { token: reader })).json, []);
  const both = await createToken(agent, { rules: 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }' });
  assert.equal((await agent.req("/v1/health/service/redis", { token: both })).json.length, 1);

  const unknown = await catalogPut(agent, "deregister", { Node: "ext1", ServiceID: "nope" }, serviceOnly);
  assert.deepEqual([unknown.status, unknown.text], [500, "Unknown service ID 'nope'"]);
  assert.equal((await catalogPut(agent, "deregister", { Node: "ext1", ServiceID: "redis" }, serviceOnly)).json, true);
  const nodeDelete = await catalogPut(agent, "deregister", { Node: "ext1" }, serviceOnly);
  assert.equal(nodeDelete.status, 403);
});

test("the consul npm client registers and deregisters catalog entries", async (t) => {
  const agent = await startAgent(t);
  const [host, port] = agent.address.split(":");
  const consul = new Consul({ host: host!, port: Number(port) });
  t.after(() => consul.destroy());
  await consul.catalog.register({
    node: "ext1", address: "10.1.2.3", nodemeta: { env: "prod" },
    service: { id: "redis-1", service: "redis", port: 6379, tags: ["primary"] },
    check: { checkid: "redis-tcp", name: "redis tcp", serviceid: "redis-1", status: "passing", definition: { tcp: "10.1.2.3:6379", intervalduration: "10s" } },
  });
  const nodes = (await consul.catalog.node.list()) as Array<{ Node: string }>;
  assert.deepEqual(nodes.map((n) => n.Node), ["ext1", "node1"]);
  assert.deepEqual(await consul.catalog.service.list(), { redis: ["primary"] });
  const entries = (await consul.health.service({ service: "redis", passing: true })) as Array<{ Node: { Node: string }; Service: { ID: string } }>;
  assert.deepEqual(entries.map((e) => [e.Node.Node, e.Service.ID]), [["ext1", "redis-1"]]);
  await consul.catalog.deregister({ node: "ext1", serviceid: "redis-1" });
  assert.deepEqual(await consul.catalog.service.list(), {});
  await consul.catalog.deregister("ext1");
  assert.deepEqual(((await consul.catalog.node.list()) as Array<{ Node: string }>).map((n) => n.Node), ["node1"]);
});
