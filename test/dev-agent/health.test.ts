import assert from "node:assert/strict";
import { test } from "node:test";
import { checkStatus, createToken, register, startAgent, tcpListener, waitFor } from "./catalog-fixture.js";

const NODE_CHECK = {
  Node: "node1", CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing", Notes: "",
  Output: "Agent alive and reachable", ServiceID: "", ServiceName: "", ServiceTags: [], Type: "", Interval: "",
  Timeout: "", ExposedPort: 0, Definition: {},
};

test("health/connect returns the proxies of a service and its native instances, in Consul's entry shape", async (t) => {
  const agent = await startAgent(t, { sidecarMinPort: 32000, sidecarMaxPort: 32010 });
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } });
  await register(agent, { Name: "web", ID: "web-native", Port: 8443, Address: "10.0.0.9", Connect: { Native: true } });
  await register(agent, { Name: "api", Port: 8081, Connect: { SidecarService: {} } });
  const res = await agent.req("/v1/health/connect/web");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-consul-knownleader"), "true");
  assert.equal(res.headers.get("x-consul-lastcontact"), "0");
  assert.ok(Number(res.headers.get("x-consul-index")) >= 1);
  assert.deepEqual(res.json.map((e: { Service: { ID: string } }) => e.Service.ID), ["web-native", "web-sidecar-proxy"]);
  const [native, proxy] = res.json;
  assert.deepEqual(proxy.Node, {
    ID: proxy.Node.ID, Node: "node1", Address: "127.0.0.1", Datacenter: "dc1",
    TaggedAddresses: { lan: "127.0.0.1", lan_ipv4: "127.0.0.1", wan: "127.0.0.1", wan_ipv4: "127.0.0.1" },
    Meta: { "consul-network-segment": "" }, CreateIndex: proxy.Node.CreateIndex, ModifyIndex: proxy.Node.ModifyIndex,
  });
  assert.match(proxy.Node.ID, /^[0-9a-f-]{36}$/);
  assert.deepEqual(proxy.Service, {
    Kind: "connect-proxy", ID: "web-sidecar-proxy", Service: "web-sidecar-proxy", Tags: [], Address: "", Meta: null,
    Port: 32000, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
    Proxy: { DestinationServiceName: "web", DestinationServiceID: "web", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080, Mode: "", MeshGateway: {}, Expose: {} },
    Connect: {}, PeerName: "", CreateIndex: proxy.Service.CreateIndex, ModifyIndex: proxy.Service.ModifyIndex,
  });
  assert.deepEqual({ ...proxy.Checks[0], CreateIndex: 0, ModifyIndex: 0 }, { ...NODE_CHECK, CreateIndex: 0, ModifyIndex: 0 });
  assert.deepEqual(proxy.Checks.map((c: { CheckID: string }) => c.CheckID), ["serfHealth", "service:web-sidecar-proxy:1", "service:web-sidecar-proxy:2"]);
  assert.deepEqual(native.Service.Proxy, { Mode: "", MeshGateway: {}, Expose: {} });
  assert.deepEqual(native.Service.Connect, { Native: true });
  assert.equal(native.Service.Kind, undefined);
  assert.deepEqual(native.Checks.map((c: { CheckID: string }) => c.CheckID), ["serfHealth"]);
  assert.deepEqual((await agent.req("/v1/health/connect/nothing")).json, []);
});

test("?passing drops entries with any non-passing check; the sidecar passes once its listener is up", async (t) => {
  const listener = await tcpListener(t);
  const agent = await startAgent(t, { sidecarMinPort: listener.port, sidecarMaxPort: listener.port });
  await register(agent, { Name: "web", Port: 8080, Check: { CheckID: "web-ttl", TTL: "1h" }, Connect: { SidecarService: {} } });
  const all = await agent.req("/v1/health/connect/web");
  assert.equal(all.json.length, 1, "without ?passing critical instances are returned");
  assert.deepEqual((await agent.req("/v1/health/connect/web?passing")).json, []);
  await agent.req("/v1/agent/check/pass/web-ttl", { method: "PUT" });
  const ok = await waitFor(agent, "/v1/health/connect/web?passing", (r) => r.json.length === 1);
  assert.equal(checkStatus(ok, `service:web-sidecar-proxy:1`), "passing");
  assert.equal(ok.json[0].Checks[1].Output, `TCP connect 127.0.0.1:${listener.port}: Success`);
  for (const v of ["", "=1", "=true"]) assert.equal((await agent.req(`/v1/health/connect/web?passing${v}`)).json.length, 1, v);
  await agent.req("/v1/agent/check/fail/web-ttl", { method: "PUT" });
  assert.deepEqual((await agent.req("/v1/health/connect/web?passing=1")).json, [], "the alias check follows the parent at once");
  assert.equal((await agent.req("/v1/health/connect/web?passing=false")).json.length, 1);
  assert.equal((await agent.req("/v1/health/connect/web?passing=0")).json.length, 1);
  const bad = await agent.req("/v1/health/connect/web?passing=maybe");
  assert.deepEqual([bad.status, bad.text], [400, "Invalid value for ?passing"]);
});

test("the passing filter reorders as Consul does: a dropped entry is swapped with the last", async (t) => {
  const agent = await startAgent(t);
  for (const [id, status] of [["m1", "critical"], ["m2", "passing"], ["m3", "passing"]] as const) {
    await register(agent, { Name: "multi", ID: id, Port: 1, Check: { TTL: "1h", Status: status } });
  }
  const ids = (await agent.req("/v1/health/service/multi?passing")).json.map((e: { Service: { ID: string } }) => e.Service.ID);
  assert.deepEqual(ids, ["m3", "m2"]);
  const tagged = await agent.req("/v1/health/service/multi?tag=none");
  assert.deepEqual(tagged.json, []);
});

test("?dc other than the agent's is 500 `No path to datacenter`; the filter parameter applies to entries", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Tags: ["a"] });
  await register(agent, { Name: "web", ID: "web-2", Port: 8081, Tags: ["b"] });
  assert.equal((await agent.req("/v1/health/service/web?dc=dc1")).json.length, 2);
  for (const path of ["/v1/health/service/web?dc=dc2", "/v1/health/connect/web?dc=dc2", "/v1/catalog/service/web?dc=dc2", "/v1/catalog/connect/web?dc=dc2"]) {
    const res = await agent.req(path);
    assert.deepEqual([res.status, res.text], [500, "No path to datacenter"], path);
  }
  const f = await agent.req(`/v1/health/service/web?filter=${encodeURIComponent('"b" in Service.Tags')}`);
  assert.deepEqual(f.json.map((e: { Service: { ID: string } }) => e.Service.ID), ["web-2"]);
  const t1 = await agent.req("/v1/health/service/web?tag=a");
  assert.deepEqual(t1.json.map((e: { Service: { ID: string } }) => e.Service.ID), ["web"]);
});

test("a blocked health/connect reader wakes when a proxy registers", async (t) => {
  const agent = await startAgent(t);
  const first = await agent.req("/v1/health/connect/web");
  const index = Number(first.headers.get("x-consul-index"));
  const blocked = agent.req(`/v1/health/connect/web?index=${index}&wait=30s`);
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } });
  const woke = await blocked;
  assert.ok(Number(woke.headers.get("x-consul-index")) > index);
  assert.equal(woke.json.length, 1);
  const badIndex = await agent.req("/v1/health/connect/web?index=abc");
  assert.deepEqual([badIndex.status, badIndex.text], [400, "Invalid index"]);
});

test("catalog/connect and catalog/service return flat ServiceNode entries", async (t) => {
  const agent = await startAgent(t, { sidecarMinPort: 32100, sidecarMaxPort: 32110 });
  await register(agent, { Name: "web", Port: 8080, Meta: { v: "1" }, Connect: { SidecarService: {} } });
  const res = await agent.req("/v1/catalog/connect/web");
  assert.equal(res.headers.get("x-consul-knownleader"), "true");
  const [e] = res.json;
  assert.deepEqual(
    { ...e, ID: "", CreateIndex: 0, ModifyIndex: 0 },
    {
      ID: "", Node: "node1", Address: "127.0.0.1", Datacenter: "dc1",
      TaggedAddresses: { lan: "127.0.0.1", lan_ipv4: "127.0.0.1", wan: "127.0.0.1", wan_ipv4: "127.0.0.1" },
      NodeMeta: { "consul-network-segment": "" }, ServiceKind: "connect-proxy", ServiceID: "web-sidecar-proxy",
      ServiceName: "web-sidecar-proxy", ServiceTags: [], ServiceAddress: "", ServiceWeights: { Passing: 1, Warning: 1 },
      ServiceMeta: { v: "1" }, ServicePort: 32100, ServiceSocketPath: "", ServiceEnableTagOverride: false,
      ServiceProxy: { DestinationServiceName: "web", DestinationServiceID: "web", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080, Mode: "", MeshGateway: {}, Expose: {} },
      ServiceConnect: {}, CreateIndex: 0, ModifyIndex: 0,
    },
  );
  const svc = await agent.req("/v1/catalog/service/web");
  assert.deepEqual(svc.json.map((x: { ServiceID: string; ServiceKind: string }) => [x.ServiceID, x.ServiceKind]), [["web", ""]]);
});

test("ACLs: health/connect needs service:read on the name; entries need node:read and service:read on their own name", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } }, { token: agent.managementToken });
  const none = await createToken(agent, { rules: 'node_prefix "" { policy = "read" }' });
  const webRead = await createToken(agent, { rules: 'service "web" { policy = "read" }\nnode_prefix "" { policy = "read" }' });
  const identity = await createToken(agent, { serviceIdentities: ["api"] });

  const denied = await agent.req("/v1/health/connect/web", { token: none });
  assert.equal(denied.status, 403);
  assert.match(denied.text, /Permission denied/);
  const filtered = await agent.req("/v1/health/connect/web", { token: webRead });
  assert.deepEqual([filtered.status, filtered.json], [200, []]);
  assert.equal(filtered.headers.get("x-consul-results-filtered-by-acls"), "true");
  const seen = await agent.req("/v1/health/connect/web", { token: identity });
  assert.deepEqual(seen.json.map((e: { Service: { ID: string } }) => e.Service.ID), ["web-sidecar-proxy"]);
  assert.equal(seen.headers.get("x-consul-results-filtered-by-acls"), null);
  const anon = await agent.req("/v1/health/service/web");
  assert.deepEqual([anon.status, anon.json], [200, []]);
  assert.equal(anon.headers.get("x-consul-results-filtered-by-acls"), null, "no header without a token");
  assert.deepEqual((await agent.req("/v1/catalog/service/web", { token: none })).json, []);
});
