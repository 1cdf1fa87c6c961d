import assert from "node:assert/strict";
import { test } from "node:test";
import { register, startAgent, tcpListener, waitFor } from "./catalog-fixture.js";

test("prepared queries: create, list, get, execute with connect=true in the §7.3 shape, delete", async (t) => {
  const listener = await tcpListener(t);
  const agent = await startAgent(t, { sidecarMinPort: listener.port, sidecarMaxPort: listener.port });
  await register(agent, { Name: "web", Port: 8080, Check: { CheckID: "web-ttl", TTL: "1h", Status: "passing" }, Connect: { SidecarService: {} } });
  const created = await agent.req("/v1/query", { method: "POST", body: { Name: "web-q", Service: { Service: "web", OnlyPassing: true } } });
  assert.equal(created.status, 200);
  const id = created.json.ID as string;
  assert.match(id, /^[0-9a-f-]{36}$/);

  const list = await agent.req("/v1/query");
  assert.equal(list.headers.get("x-consul-knownleader"), "true");
  assert.deepEqual(list.json.map((q: { ID: string; Name: string; Service: { Service: string; OnlyPassing: boolean; Connect: unknown } }) =>
    [q.ID, q.Name, q.Service.Service, q.Service.OnlyPassing, q.Service.Connect]), [[id, "web-q", "web", true, { Enabled: false }]]);
  const one = await agent.req(`/v1/query/${id}`);
  assert.equal(one.json.length, 1);
  assert.equal(one.json[0].ID, id);

  const plain = (await agent.req("/v1/query/web-q/execute")).json;
  assert.deepEqual(plain.Nodes.map((n: { Service: { ID: string } }) => n.Service.ID), ["web"]);
  const res = await waitFor(agent, `/v1/query/${id}/execute?connect=true&stale=`, (r) => r.json.Nodes.length === 1);
  assert.equal(res.headers.get("x-consul-knownleader"), "true");
  const body = res.json;
  assert.deepEqual(
    { ...body, Nodes: [], Index: 0 },
    { Service: "web", Nodes: [], DNS: { TTL: "" }, Datacenter: "dc1", PeerName: "", Failovers: 0, Index: 0, LastContact: 0,
      KnownLeader: true, ConsistencyLevel: "leader", NotModified: false, Backend: 0, ResultsFilteredByACLs: false },
  );
  const [entry] = body.Nodes;
  assert.equal(entry.Service.ID, "web-sidecar-proxy");
  assert.equal(entry.Service.Proxy.DestinationServiceName, "web");
  assert.deepEqual(entry.Service.Connect, {});
  assert.equal(entry.Node.Datacenter, "dc1");
  assert.equal(entry.Checks[0].CheckID, "serfHealth");

  await agent.req("/v1/agent/check/fail/web-ttl", { method: "PUT" });
  assert.deepEqual((await agent.req("/v1/query/web-q/execute?connect=true")).json.Nodes, [], "OnlyPassing drops the sidecar whose alias follows web");

  assert.equal((await agent.req(`/v1/query/${id}`, { method: "DELETE" })).status, 200);
  assert.deepEqual((await agent.req("/v1/query")).json, []);
});

test("prepared query errors: unknown query 404, bad connect/limit 500, missing service 500, foreign dc 500", async (t) => {
  const agent = await startAgent(t);
  const unknown = await agent.req("/v1/query/nope/execute?connect=true");
  assert.deepEqual([unknown.status, unknown.text], [404, "Query not found"]);
  const noService = await agent.req("/v1/query", { method: "POST", body: { Name: "x", Service: {} } });
  assert.deepEqual([noService.status, noService.text], [500, "Must provide a Service name to query"]);
  await agent.req("/v1/query", { method: "POST", body: { Name: "q", Service: { Service: "web" } } });
  const dup = await agent.req("/v1/query", { method: "POST", body: { Name: "q", Service: { Service: "web" } } });
  assert.equal(dup.status, 500);
  const badConnect = await agent.req("/v1/query/q/execute?connect=maybe");
  assert.deepEqual([badConnect.status, badConnect.text], [500, `Error parsing 'connect' value: strconv.ParseBool: parsing "maybe": invalid syntax`]);
  const badLimit = await agent.req("/v1/query/q/execute?limit=x");
  assert.deepEqual([badLimit.status, badLimit.text], [500, `Bad limit: strconv.Atoi: parsing "x": invalid syntax`]);
  const dc = await agent.req("/v1/query/q/execute?dc=dc9");
  assert.deepEqual([dc.status, dc.text], [500, "No path to datacenter"]);
  const empty = await agent.req("/v1/query/q/execute");
  assert.deepEqual(empty.json.Nodes, []);
  await register(agent, { Name: "web", Port: 1 });
  await register(agent, { Name: "web", ID: "web-2", Port: 2 });
  assert.equal((await agent.req("/v1/query/q/execute")).json.Nodes.length, 2, "without OnlyPassing only critical is dropped, and new checks-less services pass");
  assert.equal((await agent.req("/v1/query/q/execute?limit=1")).json.Nodes.length, 1);
});
