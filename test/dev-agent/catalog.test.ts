import assert from "node:assert/strict";
import { test } from "node:test";
import { checkStatus, createToken, register, startAgent, tcpListener, waitFor } from "./catalog-fixture.js";

test("register answers 200 with an empty body and the agent service has Consul's exact shape", async (t) => {
  const agent = await startAgent(t);
  const reg = await agent.req("/v1/agent/service/register", { method: "PUT", body: { Name: "web", Port: 8080 } });
  assert.equal(reg.status, 200);
  assert.equal(reg.text, "");
  assert.equal(reg.headers.get("content-type"), null);

  const res = await agent.req("/v1/agent/service/web");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-consul-index"), null, "agent-local endpoints send no index");
  const hash = res.headers.get("x-consul-contenthash");
  assert.match(hash ?? "", /^[0-9a-f]{1,16}$/);
  assert.deepEqual(res.json, {
    ID: "web", Service: "web", Tags: [], Meta: {}, Port: 8080, Address: "", Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false, ContentHash: hash, Datacenter: "dc1",
  });

  await register(agent, {
    Kind: "connect-proxy", Name: "web-proxy", Port: 21000, enable_tag_override: true,
    Proxy: { destination_service_name: "web", DestinationServiceID: "web", LocalServicePort: 8080, Upstreams: [{ DestinationName: "db", LocalBindPort: 9191 }] },
  });
  const proxy = await agent.req("/v1/agent/service/web-proxy");
  assert.deepEqual(proxy.json, {
    Kind: "connect-proxy", ID: "web-proxy", Service: "web-proxy", Tags: [], Meta: {}, Port: 21000, Address: "",
    Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: true, ContentHash: proxy.json.ContentHash,
    Proxy: {
      DestinationServiceName: "web", DestinationServiceID: "web", LocalServicePort: 8080,
      Upstreams: [{ DestinationType: "service", DestinationName: "db", LocalBindPort: 9191, MeshGateway: {} }],
      MeshGateway: {}, Expose: {},
    },
    Datacenter: "dc1",
  });

  await register(agent, { Name: "native", Port: 9000, Connect: { Native: true } });
  const native = await agent.req("/v1/agent/service/native");
  assert.deepEqual(native.json.Connect, { Native: true });
  assert.equal(native.json.Proxy, undefined);
});

test("register is PUT only and refuses unknown fields; unknown IDs give Consul's 404 texts", async (t) => {
  const agent = await startAgent(t);
  const get = await agent.req("/v1/agent/service/register");
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "OPTIONS,PUT");
  const bad = await agent.req("/v1/agent/service/register", { method: "PUT", body: { Name: "web", Colour: "red" } });
  assert.deepEqual([bad.status, bad.text], [400, 'Request decode failed: json: unknown field "Colour"']);
  const any = await agent.req("/v1/agent/service/register", { method: "PUT", body: { Name: "web", Address: "0.0.0.0" } });
  assert.deepEqual([any.status, any.text], [400, "Invalid service address"]);
  const missing = await agent.req("/v1/agent/service/nope");
  assert.deepEqual([missing.status, missing.text], [404, "unknown service ID: nope"]);
  const dereg = await agent.req("/v1/agent/service/deregister/nope", { method: "PUT" });
  assert.deepEqual([dereg.status, dereg.text], [404, 'Unknown service ID "nope". Ensure that the service ID is passed, not the service name.']);
});

test("sidecar ports: lowest free in range, sticky across re-registration, exhaustion is a 400", async (t) => {
  const agent = await startAgent(t, { sidecarMinPort: 31000, sidecarMaxPort: 31001 });
  await register(agent, { Name: "other", Port: 31000 });
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } });
  assert.equal((await agent.req("/v1/agent/service/web-sidecar-proxy")).json.Port, 31001);
  await agent.req("/v1/agent/service/deregister/other", { method: "PUT" });
  await register(agent, { Name: "web", Port: 8080, Tags: ["v2"], Connect: { SidecarService: {} } });
  const again = await agent.req("/v1/agent/service/web-sidecar-proxy");
  assert.equal(again.json.Port, 31001, "a re-registered sidecar keeps its port");
  assert.deepEqual(again.json.Tags, ["v2"], "tags are copied from the parent");
  await register(agent, { Name: "api", Port: 8081, Connect: { SidecarService: {} } });
  assert.equal((await agent.req("/v1/agent/service/api-sidecar-proxy")).json.Port, 31000);
  const full = await agent.req("/v1/agent/service/register", { method: "PUT", body: { Name: "db", Port: 1, Connect: { SidecarService: {} } } });
  assert.deepEqual([full.status, full.text], [
    400, "Invalid SidecarService: no port provided for sidecar_service and none left in the configured range [31000, 31001]",
  ]);
});

test("a sidecar goes away when its parent re-registers without it or is deregistered", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } });
  const sc = await agent.req("/v1/agent/service/web-sidecar-proxy");
  assert.deepEqual(sc.json.Proxy, { DestinationServiceName: "web", DestinationServiceID: "web", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080, MeshGateway: {}, Expose: {} });
  await register(agent, { Name: "web", Port: 8080 });
  assert.equal((await agent.req("/v1/agent/service/web-sidecar-proxy")).status, 404);
  assert.equal((await agent.req("/v1/agent/checks")).json["service:web-sidecar-proxy:1"], undefined);
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } });
  assert.equal((await agent.req("/v1/agent/service/web-sidecar-proxy")).status, 200);
  assert.equal((await agent.req("/v1/agent/service/deregister/web", { method: "PUT" })).status, 200);
  assert.equal((await agent.req("/v1/agent/service/web-sidecar-proxy")).status, 404);
  assert.deepEqual((await agent.req("/v1/agent/services")).json, {});
});

test("the agent service blocks on ?hash until its content changes, and ignores ?index", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080 });
  const first = await agent.req("/v1/agent/service/web?index=999999");
  const hash = first.json.ContentHash as string;
  assert.equal(first.headers.get("x-consul-contenthash"), hash);
  const blocked = agent.req(`/v1/agent/service/web?hash=${hash}&wait=20s`);
  await register(agent, { Name: "web", Port: 8080 }); // idempotent: same hash, keeps blocking
  await register(agent, { Name: "web", Port: 8080, Tags: ["changed"] });
  const changed = await blocked;
  assert.deepEqual(changed.json.Tags, ["changed"]);
  assert.notEqual(changed.json.ContentHash, hash);
  assert.equal(changed.headers.get("x-consul-contenthash"), changed.json.ContentHash);
  const bad = await agent.req(`/v1/agent/service/web?hash=${hash}&wait=10`);
  assert.deepEqual([bad.status, bad.text], [400, "Invalid wait time"]);
});

test("/v1/agent/services is keyed by ID, without ContentHash, and supports filter", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Tags: ["v1"], Connect: { SidecarService: {} } });
  await register(agent, { Name: "api", Port: 8081 });
  const all = await agent.req("/v1/agent/services");
  assert.deepEqual(Object.keys(all.json).sort(), ["api", "web", "web-sidecar-proxy"]);
  assert.equal(all.json.web.ContentHash, undefined);
  assert.equal(all.json["web-sidecar-proxy"].Kind, "connect-proxy");
  const q = (f: string) => agent.req(`/v1/agent/services?filter=${encodeURIComponent(f)}`);
  assert.deepEqual(Object.keys((await q('Kind == "connect-proxy" and Proxy.DestinationServiceID == "web"')).json), ["web-sidecar-proxy"]);
  assert.deepEqual(Object.keys((await q('Kind != "connect-proxy" and "v1" in Tags')).json), ["web"]);
  assert.deepEqual(Object.keys((await q('Service == "api" or (Tags contains "v1" and not Kind == "connect-proxy")')).json).sort(), ["api", "web"]);
  const bad = await q("Service ==");
  assert.equal(bad.status, 400);
  assert.match(bad.text, /^Failed to create filter: /);
});

test("ACLs: register needs service:write (also on a proxy's destination); lists drop what the token cannot read", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  const web = await createToken(agent, { serviceIdentities: ["web"] });
  const webOnly = await createToken(agent, { rules: 'service "web" { policy = "write" }\nnode_prefix "" { policy = "read" }' });
  await register(agent, { Name: "web", Port: 8080, Connect: { SidecarService: {} } }, { token: web });
  await register(agent, { Name: "api", Port: 8081 }, { token: agent.managementToken });
  const proxyForDb = await agent.req("/v1/agent/service/register", {
    method: "PUT", token: web, body: { Kind: "connect-proxy", Name: "web-sidecar-proxy", ID: "x", Port: 1, Proxy: { DestinationServiceName: "db" } },
  });
  assert.equal(proxyForDb.status, 403);
  assert.match(proxyForDb.text, /Permission denied/);
  assert.deepEqual(Object.keys((await agent.req("/v1/agent/services", { token: webOnly })).json), ["web"]);
  assert.deepEqual(Object.keys((await agent.req("/v1/agent/services", { token: web })).json).sort(), ["api", "web", "web-sidecar-proxy"]);
  assert.deepEqual((await agent.req("/v1/agent/services")).json, {}, "the anonymous token sees nothing under deny");
  assert.equal((await agent.req("/v1/agent/service/api", { token: webOnly })).status, 403);
  const checks = (await agent.req("/v1/agent/checks", { token: webOnly })).json;
  assert.deepEqual(Object.keys(checks), [], "web has no checks and the sidecar's are not readable");
  assert.equal((await agent.req("/v1/agent/service/deregister/api", { method: "PUT", token: web })).status, 403);
});

test("checks start critical; TTL pass/warn/fail/update set status and output with Consul's error texts", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Check: { TTL: "1h" }, Tags: ["t"] });
  const c = (await agent.req("/v1/agent/checks")).json["service:web"];
  assert.deepEqual(c, {
    Node: "node1", CheckID: "service:web", Name: "Service 'web' check", Status: "critical", Notes: "", Output: "",
    ServiceID: "web", ServiceName: "web", ServiceTags: ["t"], Type: "ttl", Interval: "", Timeout: "", ExposedPort: 0,
    Definition: { TTL: "1h0m0s" }, CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex,
  });
  const status = async () => {
    const x = (await agent.req("/v1/agent/checks")).json["service:web"];
    return [x.Status, x.Output];
  };
  assert.equal((await agent.req("/v1/agent/check/pass/service:web?note=ok", { method: "PUT" })).text, "");
  assert.deepEqual(await status(), ["passing", "ok"]);
  await agent.req("/v1/agent/check/warn/service:web", { method: "PUT" });
  assert.deepEqual(await status(), ["warning", ""]);
  await agent.req("/v1/agent/check/fail/service:web?note=down", { method: "PUT" });
  assert.deepEqual(await status(), ["critical", "down"]);
  const upd = await agent.req("/v1/agent/check/update/service:web", { method: "PUT", body: { Status: "passing", Output: "fine" } });
  assert.equal(upd.status, 200);
  assert.deepEqual(await status(), ["passing", "fine"]);

  const badStatus = await agent.req("/v1/agent/check/update/service:web", { method: "PUT", body: { Status: "bogus" } });
  assert.deepEqual([badStatus.status, badStatus.text], [400, "Invalid check status: 'bogus'"]);
  const unknown = await agent.req("/v1/agent/check/pass/nope", { method: "PUT" });
  assert.deepEqual([unknown.status, unknown.text], [404, 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.']);
  await register(agent, { Name: "tcp", Port: 1, Check: { CheckID: "tcp-check", TCP: "127.0.0.1:1", Interval: "1h" } });
  const notTtl = await agent.req("/v1/agent/check/pass/tcp-check", { method: "PUT" });
  assert.deepEqual([notTtl.status, notTtl.text], [500, 'CheckID "tcp-check" does not have associated TTL']);
  assert.equal((await agent.req("/v1/agent/check/pass/service:web")).status, 405);
});

test("check register and deregister, node-level and service-level", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080 });
  assert.equal((await agent.req("/v1/agent/check/register", { method: "PUT", body: { Name: "disk", TTL: "1h", Status: "passing" } })).status, 200);
  assert.equal((await agent.req("/v1/agent/check/register", { method: "PUT", body: { ID: "web-ttl", Name: "web ttl", ServiceID: "web", TTL: "1h" } })).status, 200);
  const checks = (await agent.req("/v1/agent/checks")).json;
  assert.deepEqual([checks.disk.Status, checks.disk.ServiceID], ["passing", ""]);
  assert.deepEqual([checks["web-ttl"].Status, checks["web-ttl"].ServiceName], ["critical", "web"]);
  const noSvc = await agent.req("/v1/agent/check/register", { method: "PUT", body: { Name: "x", TTL: "1h", ServiceID: "nope" } });
  assert.deepEqual([noSvc.status, noSvc.text], [404, 'ServiceID "nope" does not exist']);
  assert.equal((await agent.req("/v1/agent/check/deregister/disk", { method: "PUT" })).status, 200);
  assert.equal((await agent.req("/v1/agent/checks")).json.disk, undefined);
  assert.equal((await agent.req("/v1/agent/check/deregister/disk", { method: "PUT" })).status, 404);
});

test("replace-existing-checks drops the service's checks missing from the new registration", async (t) => {
  const agent = await startAgent(t);
  const body = (ids: string[]) => ({ Name: "web", Port: 8080, Checks: ids.map((id) => ({ CheckID: id, TTL: "1h" })) });
  await register(agent, body(["a", "b"]));
  await agent.req("/v1/agent/check/pass/a", { method: "PUT" });
  await register(agent, body(["a"]));
  const kept = (await agent.req("/v1/agent/checks")).json;
  assert.deepEqual(Object.keys(kept).sort(), ["a", "b"]);
  assert.equal(kept.a.Status, "passing", "a re-registered check keeps its status");
  await register(agent, body(["a"]), { query: "?replace-existing-checks" });
  assert.deepEqual(Object.keys((await agent.req("/v1/agent/checks")).json), ["a"]);
});

test("a TTL check that is not refreshed goes critical with output `TTL expired`", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Check: { CheckID: "beat", TTL: "150ms", Status: "passing" } });
  const res = await waitFor(agent, "/v1/health/service/web", (r) => checkStatus(r, "beat") === "critical");
  const check = res.json[0].Checks.find((c: { CheckID: string }) => c.CheckID === "beat");
  assert.equal(check.Output, "TTL expired");
});

test("TCP checks really connect, right away and then every Interval", async (t) => {
  const agent = await startAgent(t);
  const app = await tcpListener(t);
  const addr = `127.0.0.1:${app.port}`;
  await register(agent, { Name: "web", Port: app.port, Check: { CheckID: "tcp", TCP: addr, Interval: "100ms", Timeout: "1s" } });
  const up = await waitFor(agent, "/v1/health/service/web", (r) => checkStatus(r, "tcp") === "passing");
  const upCheck = up.json[0].Checks.find((c: { CheckID: string }) => c.CheckID === "tcp");
  assert.equal(upCheck.Output, `TCP connect ${addr}: Success`);
  assert.deepEqual([upCheck.Type, upCheck.Interval, upCheck.Timeout, upCheck.Definition], ["tcp", "100ms", "1s", { TCP: addr, Interval: "100ms", Timeout: "1s" }]);
  await app.close();
  const down = await waitFor(agent, "/v1/health/service/web", (r) => checkStatus(r, "tcp") === "critical");
  assert.match(down.json[0].Checks.find((c: { CheckID: string }) => c.CheckID === "tcp").Output, /^dial tcp 127\.0\.0\.1:\d+: connect: connection refused$/);
});

test("a sidecar's alias check follows the parent's worst check status at once", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080, Checks: [{ CheckID: "web-a", TTL: "1h" }, { CheckID: "web-b", TTL: "1h", Status: "passing" }], Connect: { SidecarService: {} } });
  const alias = async () => (await agent.req("/v1/agent/checks")).json["service:web-sidecar-proxy:2"];
  const first = await alias();
  assert.deepEqual([first.Name, first.Type, first.Status, first.Definition], ["Connect Sidecar Aliasing web", "alias", "critical", { AliasService: "web" }]);
  await agent.req("/v1/agent/check/warn/web-a?note=slow", { method: "PUT" });
  const warn = await alias();
  assert.deepEqual([warn.Status, warn.Output], ["warning", 'Aliased check "Service \'web\' check" failing: slow']);
  await agent.req("/v1/agent/check/pass/web-a", { method: "PUT" });
  assert.deepEqual([(await alias()).Status, (await alias()).Output], ["passing", "All checks passing."]);
  await agent.req("/v1/agent/check/fail/web-b", { method: "PUT" });
  assert.equal((await alias()).Status, "critical");
});

test("maintenance mode adds a critical maintenance check and removes it again", async (t) => {
  const agent = await startAgent(t);
  await register(agent, { Name: "web", Port: 8080 });
  assert.equal((await agent.req("/v1/agent/service/maintenance/web?enable=true&reason=upgrade", { method: "PUT" })).status, 200);
  const m = (await agent.req("/v1/agent/checks")).json["_service_maintenance:web"];
  assert.deepEqual([m.Status, m.Type, m.Notes], ["critical", "maintenance", "upgrade"]);
  assert.equal((await agent.req("/v1/agent/service/maintenance/web?enable=true&reason=again", { method: "PUT" })).status, 200);
  assert.equal((await agent.req("/v1/agent/checks")).json["_service_maintenance:web"].Notes, "upgrade", "enabling again keeps the first reason");
  assert.deepEqual((await agent.req("/v1/health/service/web?passing")).json, []);
  await agent.req("/v1/agent/service/maintenance/web?enable=false", { method: "PUT" });
  assert.equal((await agent.req("/v1/agent/checks")).json["_service_maintenance:web"], undefined);
  assert.equal((await agent.req("/v1/agent/service/maintenance/web", { method: "PUT" })).status, 400);
});
