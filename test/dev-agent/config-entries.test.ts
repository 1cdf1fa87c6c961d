// Configuration entries (/v1/config) for proxy-defaults, service-defaults and service-intentions,
// checked against Consul's config_endpoint.go / config_entry*.go behaviour, and the one store that
// intentions and service-intentions entries share.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createToken, register, setProtocol, startAgent, type TestAgent } from "./catalog-fixture.js";

const putEntry = (agent: TestAgent, body: unknown, opts: { token?: string; query?: string } = {}) =>
  agent.req(`/v1/config${opts.query ?? ""}`, { method: "PUT", body, ...(opts.token !== undefined ? { token: opts.token } : {}) });

const L7_ENTRY = {
  Kind: "service-intentions",
  Name: "api",
  Meta: { owner: "team-a" },
  Sources: [
    { Name: "*", Action: "deny" },
    {
      Name: "web",
      Permissions: [
        { Action: "deny", HTTP: { PathExact: "/admin" } },
        { Action: "allow", HTTP: { PathPrefix: "/v1/", Methods: ["get", "head"], Header: [{ Name: "x-env", Exact: "prod" }] } },
        { Action: "allow", HTTP: { PathRegex: "^/health$" } },
      ],
    },
  ],
};

test("service-defaults and proxy-defaults: PUT answers true, GET returns Consul's shape, keys decode case-insensitively with aliases", async (t) => {
  const agent = await startAgent(t);
  const put = await putEntry(agent, { kind: "service-defaults", name: "web", protocol: "HTTP", local_connect_timeout_ms: 500, mesh_gateway: { mode: "local" } });
  assert.deepEqual([put.status, put.json], [200, true]);
  const got = await agent.req("/v1/config/service-defaults/web");
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("x-consul-knownleader"), "true");
  assert.equal(got.headers.get("x-consul-index"), String(got.json.ModifyIndex));
  assert.deepEqual(got.json, {
    Kind: "service-defaults", Name: "web", Protocol: "http", TransparentProxy: {}, MeshGateway: { Mode: "local" }, Expose: {},
    LocalConnectTimeoutMs: 500, CreateIndex: got.json.CreateIndex, ModifyIndex: got.json.CreateIndex,
  });

  assert.equal((await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: { protocol: "http", local_request_timeout_ms: 1000 } })).json, true);
  const proxy = (await agent.req("/v1/config/proxy-defaults/global")).json;
  assert.deepEqual(proxy, {
    Kind: "proxy-defaults", Name: "global", Config: { protocol: "http", local_request_timeout_ms: 1000 }, TransparentProxy: {}, MeshGateway: {}, Expose: {},
    CreateIndex: proxy.CreateIndex, ModifyIndex: proxy.ModifyIndex,
  });
  // a proxy-defaults entry without a name is the global one
  assert.equal((await putEntry(agent, { Kind: "proxy-defaults", Config: {} })).json, true);

  await putEntry(agent, { Kind: "service-defaults", Name: "db", Protocol: "tcp" });
  const list = await agent.req("/v1/config/service-defaults");
  assert.deepEqual(list.json.map((e: { Name: string }) => e.Name), ["db", "web"]);
  assert.deepEqual((await agent.req("/v1/config/service-router")).json, []);
});

test("config entries: ?cas= on PUT and DELETE, DELETE's answers, and 404 for a missing entry", async (t) => {
  const agent = await startAgent(t);
  assert.equal((await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "http" }, { query: "?cas=0" })).json, true);
  const first = (await agent.req("/v1/config/service-defaults/web")).json;
  assert.equal((await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "grpc" }, { query: "?cas=0" })).json, false);
  assert.equal((await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "grpc" }, { query: `?cas=${first.ModifyIndex + 100}` })).json, false);
  assert.equal((await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "grpc" }, { query: `?cas=${first.ModifyIndex}` })).json, true);
  const second = (await agent.req("/v1/config/service-defaults/web")).json;
  assert.equal(second.Protocol, "grpc");
  assert.equal(second.CreateIndex, first.CreateIndex);
  assert.ok(second.ModifyIndex > first.ModifyIndex);

  const stale = await agent.req(`/v1/config/service-defaults/web?cas=${first.ModifyIndex}`, { method: "DELETE" });
  assert.deepEqual([stale.status, stale.json], [200, false]);
  const casDel = await agent.req(`/v1/config/service-defaults/web?cas=${second.ModifyIndex}`, { method: "DELETE" });
  assert.deepEqual([casDel.status, casDel.json], [200, true]);
  const missing = await agent.req("/v1/config/service-defaults/web");
  assert.deepEqual([missing.status, missing.text], [404, 'Config entry not found for "service-defaults" / "web"']);
  await putEntry(agent, { Kind: "service-defaults", Name: "web" });
  const plain = await agent.req("/v1/config/service-defaults/web", { method: "DELETE" });
  assert.deepEqual([plain.status, plain.json], [200, {}]);
  const badCas = await agent.req("/v1/config/service-defaults/web?cas=x", { method: "DELETE" });
  assert.deepEqual([badCas.status, badCas.text], [500, 'strconv.ParseUint: parsing "x": invalid syntax']);
});

test("config entries are validated as Consul validates them, with its texts and status codes", async (t) => {
  const agent = await startAgent(t);
  const cases: Array<[unknown, number, string]> = [
    [{ Name: "web" }, 400, "Request decoding failed: Payload does not contain a kind/Kind key at the top level"],
    [{ Kind: 3, Name: "web" }, 400, "Request decoding failed: Kind value in payload is not a string"],
    [{ Kind: "no-such-kind", Name: "web" }, 400, "Request decoding failed: invalid config entry kind: no-such-kind"],
    [{ Kind: "service-defaults", Name: "web", Foo: 1 }, 400, 'Request decoding failed: 1 error occurred:\n\t* invalid config key "Foo"\n\n'],
    [{ Kind: "service-defaults", Name: "web", Namespace: "ns1" }, 400, 'Request decoding failed: 1 error occurred:\n\t* invalid config key "Namespace", namespaces are a consul enterprise feature\n\n'],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Action: "allow", Bogus: true }] }, 400, 'Request decoding failed: 1 error occurred:\n\t* invalid config key "Sources[0].Bogus"\n\n'],
    [{ Kind: "proxy-defaults", Name: "other" }, 500, 'invalid name ("other"), only "global" is supported'],
    [{ Kind: "service-defaults", Name: "*" }, 500, "service-defaults name must be the name of a service, and not a wildcard"],
    [{ Kind: "service-defaults" }, 500, "Name is required"],
    [{ Kind: "service-defaults", Name: "web", BalanceInboundConnections: "round_robin" }, 500, "1 error occurred:\n\t* invalid value for balance_inbound_connections: round_robin\n\n"],
    [{ Kind: "service-intentions", Name: "api" }, 500, "At least one source is required"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Action: "permit" }] }, 500, "Sources[0].Action must be set to 'allow' or 'deny'"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "we*", Action: "allow" }] }, 500, "Sources[0].Name: wildcard character '*' cannot be used with partial values"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Action: "allow" }, { Name: "web", Action: "deny" }] }, 500, 'Sources[1] defines "web" more than once'],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Action: "allow", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] }] }, 500, "Sources[0].Action must be omitted if Permissions are specified"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathExact: "admin" } }] }] }, 500, "Sources[0].Permissions[0].HTTP.PathExact doesn't start with '/': \"admin\""],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathExact: "/a", PathPrefix: "/b" } }] }] }, 500, "Sources[0].Permissions[0].HTTP should only contain at most one of PathExact, PathPrefix, or PathRegex"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { Methods: ["FETCH"] } }] }] }, 500, 'Sources[0].Permissions[0].HTTP.Methods contains an invalid method "FETCH"'],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { Methods: ["GET", "get"] } }] }] }, 500, 'Sources[0].Permissions[0].HTTP.Methods contains "GET" more than once'],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { Header: [{ Name: "x", Exact: "a", Prefix: "b" }] } }] }] }, 500, "Sources[0].Permissions[0].HTTP.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: {} }] }] }, 500, "Sources[0].Permissions[0].HTTP should not be empty"],
    [{ Kind: "service-intentions", Name: "api", Sources: [{ Name: "web", Permissions: [{ Action: "allow" }] }] }, 500, "Sources[0].Permissions[0].HTTP is required"],
    [{ Kind: "service-intentions", Name: "*", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] }] }, 500, "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations"],
    // L7 permissions need an HTTP-like protocol for the destination (none set: tcp)
    [L7_ENTRY, 500, 'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions'],
  ];
  for (const [body, status, text] of cases) {
    const res = await putEntry(agent, body);
    assert.deepEqual([res.status, res.text], [status, text], JSON.stringify(body));
  }
  const badKindList = await agent.req("/v1/config/no-such-kind");
  assert.deepEqual([badKindList.status, badKindList.text], [500, "invalid config entry kind: no-such-kind"]);
  const badKindDelete = await agent.req("/v1/config/no-such-kind/x", { method: "DELETE" });
  assert.deepEqual([badKindDelete.status, badKindDelete.text], [400, "invalid config entry kind: no-such-kind"]);
  const noName = await agent.req("/v1/config/service-defaults", { method: "DELETE" });
  assert.deepEqual([noName.status, noName.text], [404, "Must provide both a kind and name to delete"]);
  assert.equal((await agent.req("/v1/config", { method: "GET" })).status, 405);

  // once the destination speaks HTTP the entry is accepted, and the protocol can no longer go back to tcp
  await setProtocol(agent, "api", "http");
  assert.equal((await putEntry(agent, L7_ENTRY)).json, true);
  const downgrade = await putEntry(agent, { Kind: "service-defaults", Name: "api", Protocol: "tcp" });
  assert.deepEqual([downgrade.status, downgrade.text], [500, 'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions']);
  const removal = await agent.req("/v1/config/service-defaults/api", { method: "DELETE" });
  assert.equal(removal.status, 500);
  // proxy-defaults can supply the protocol instead
  assert.equal((await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: { protocol: "http" } })).json, true);
  assert.equal((await agent.req("/v1/config/service-defaults/api", { method: "DELETE" })).status, 200);
});

test("service-intentions entries and intentions are one store: each API sees what the other wrote", async (t) => {
  const agent = await startAgent(t);
  await setProtocol(agent, "api", "http");
  assert.equal((await putEntry(agent, L7_ENTRY)).json, true);

  const entry = (await agent.req("/v1/config/service-intentions/api")).json;
  assert.equal((await putEntry(agent, L7_ENTRY, { query: "?cas=0" })).json, false, "cas 0 refuses to replace an existing entry");
  assert.equal((await agent.req(`/v1/config/service-intentions/api?cas=${entry.ModifyIndex + 1}`, { method: "DELETE" })).json, false);
  assert.deepEqual(entry, {
    Kind: "service-intentions",
    Name: "api",
    Sources: [
      {
        Name: "web",
        Permissions: [
          { Action: "deny", HTTP: { PathExact: "/admin" } },
          { Action: "allow", HTTP: { PathPrefix: "/v1/", Header: [{ Name: "x-env", Exact: "prod" }], Methods: ["GET", "HEAD"] } },
          { Action: "allow", HTTP: { PathRegex: "^/health$" } },
        ],
        Precedence: 9,
        Type: "consul",
      },
      { Name: "*", Action: "deny", Precedence: 8, Type: "consul" },
    ],
    Meta: { owner: "team-a" },
    CreateIndex: entry.CreateIndex,
    ModifyIndex: entry.ModifyIndex,
  });

  // the entry's sources through the intentions API: L7 has Permissions and no Action; Meta and indexes are the entry's
  const exact = (await agent.req("/v1/connect/intentions/exact?source=web&destination=api")).json;
  assert.deepEqual(exact, {
    SourceNS: "default", SourceName: "web", DestinationNS: "default", DestinationName: "api", SourceType: "consul",
    Permissions: entry.Sources[0]!.Permissions, Meta: { owner: "team-a" }, Precedence: 9, CreateIndex: entry.CreateIndex, ModifyIndex: entry.ModifyIndex,
  });
  const match = (await agent.req("/v1/connect/intentions/match?by=destination&name=api")).json;
  assert.deepEqual(match.api.map((i: { SourceName: string }) => i.SourceName), ["web", "*"]);
  assert.deepEqual(match.api[0].Permissions, entry.Sources[0]!.Permissions);
  assert.deepEqual((await agent.req("/v1/connect/intentions/check?source=web&destination=api")).json, { Allowed: false });
  const authz = await agent.req("/v1/agent/connect/authorize", {
    method: "POST", body: { Target: "api", ClientCertURI: `spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web` },
  });
  assert.deepEqual(authz.json, { Authorized: false, Reason: "Matched L7 intention: default/web => default/api (Precedence: 9, Permissions: 3)" });

  // the other way round: an intention written through the intentions API shows up in the entry
  const viaApi = await agent.req("/v1/connect/intentions/exact?source=ops&destination=api", {
    method: "PUT", body: { Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/ops", Methods: ["post"] } }] },
  });
  assert.deepEqual([viaApi.status, viaApi.json], [200, true]);
  const after = (await agent.req("/v1/config/service-intentions/api")).json;
  assert.deepEqual(after.Sources.map((s: { Name: string }) => s.Name), ["web", "ops", "*"]);
  assert.deepEqual(after.Sources[1].Permissions, [{ Action: "allow", HTTP: { PathPrefix: "/ops", Methods: ["POST"] } }]);
  assert.deepEqual(after.Meta, { owner: "team-a" }, "an exact write keeps the entry's Meta");
  assert.ok(after.ModifyIndex > entry.ModifyIndex);
  assert.equal(after.CreateIndex, entry.CreateIndex);

  // the legacy ID API may not edit a destination written through /v1/config
  const legacy = await agent.req("/v1/connect/intentions", { method: "POST", body: { SourceName: "batch", DestinationName: "api", Action: "allow" } });
  assert.deepEqual([legacy.status, legacy.text], [500, 'cannot use legacy intention API to edit intentions with a destination of "api" after editing them via a service-intentions config entry']);
  // but a legacy-created intention is an entry too, with LegacyID and its own Meta as LegacyMeta
  const created = await agent.req("/v1/connect/intentions", { method: "POST", body: { SourceName: "batch", DestinationName: "db", Action: "allow", Meta: { k: "v" } } });
  const legacyEntry = (await agent.req("/v1/config/service-intentions/db")).json;
  assert.equal(legacyEntry.Sources[0].LegacyID, created.json.ID);
  assert.deepEqual(legacyEntry.Sources[0].LegacyMeta, { k: "v" });
  assert.equal(typeof legacyEntry.Sources[0].LegacyCreateTime, "string");
  assert.deepEqual((await agent.req("/v1/config/service-intentions")).json.map((e: { Name: string }) => e.Name), ["api", "db"]);

  // deleting the last source through the intentions API deletes the entry; deleting the entry deletes its intentions
  await agent.req(`/v1/connect/intentions/${created.json.ID}`, { method: "DELETE" });
  assert.equal((await agent.req("/v1/config/service-intentions/db")).status, 404);
  assert.deepEqual((await agent.req("/v1/config/service-intentions/api", { method: "DELETE" })).json, {});
  assert.deepEqual((await agent.req("/v1/connect/intentions")).json, []);
});

test("config entry reads block: an entry write wakes them, an unrelated write does not; intentions wake on an entry write", async (t) => {
  const agent = await startAgent(t);
  await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "tcp" });
  const first = await agent.req("/v1/config/service-defaults/web");
  const index = first.headers.get("x-consul-index");
  const intentionsFirst = await agent.req("/v1/connect/intentions");

  const blocked = agent.req(`/v1/config/service-defaults/web?index=${index}&wait=10m`);
  const blockedList = agent.req(`/v1/connect/intentions?index=${intentionsFirst.headers.get("x-consul-index")}&wait=10m`);
  await register(agent, { Name: "unrelated", Port: 1234 });
  await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "http" });
  await putEntry(agent, { Kind: "service-intentions", Name: "db", Sources: [{ Name: "web", Action: "allow" }] });

  const woke = await blocked;
  assert.equal(woke.json.Protocol, "http", "the answer follows the entry write, not the registration");
  assert.ok(Number(woke.headers.get("x-consul-index")) > Number(index));
  const list = await blockedList;
  assert.deepEqual(list.json.map((i: { SourceName: string; DestinationName: string }) => `${i.SourceName}>${i.DestinationName}`), ["web>db"]);
});

test("config entries under default deny: reads filter or need the kind's permission, writes need mesh, service or intentions write", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  await setProtocol(agent, "web", "http", mgmt);
  await setProtocol(agent, "db", "tcp", mgmt);
  assert.equal((await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: {} }, { token: mgmt })).json, true);
  await putEntry(agent, { Kind: "service-intentions", Name: "web", Sources: [{ Name: "api", Action: "allow" }] }, { token: mgmt });
  await putEntry(agent, { Kind: "service-intentions", Name: "db", Sources: [{ Name: "api", Action: "allow" }] }, { token: mgmt });

  // anonymous: lists are empty, never 403; proxy-defaults are readable by everyone
  const anonList = await agent.req("/v1/config/service-defaults");
  assert.deepEqual([anonList.status, anonList.json], [200, []]);
  assert.deepEqual((await agent.req("/v1/config/service-intentions")).json, []);
  assert.equal((await agent.req("/v1/config/proxy-defaults/global")).status, 200);
  const anonOne = await agent.req("/v1/config/service-defaults/web");
  assert.equal(anonOne.status, 403);
  assert.match(anonOne.text, /^Permission denied: anonymous token lacks permission 'service:read' on "web"/);

  const webReader = await createToken(agent, { rules: 'service "web" { policy = "read" }' });
  const filtered = await agent.req("/v1/config/service-defaults", { token: webReader });
  assert.deepEqual(filtered.json.map((e: { Name: string }) => e.Name), ["web"]);
  assert.equal(filtered.headers.get("x-consul-results-filtered-by-acls"), "true");
  assert.deepEqual((await agent.req("/v1/config/service-intentions", { token: webReader })).json.map((e: { Name: string }) => e.Name), ["web"]);
  const noWrite = await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "grpc" }, { token: webReader });
  assert.equal(noWrite.status, 403);
  assert.match(noWrite.text, /lacks permission 'service:write' on "web"/);
  const noMesh = await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: {} }, { token: webReader });
  assert.equal(noMesh.status, 403);
  assert.match(noMesh.text, /lacks permission 'mesh:write'/);
  const noIntentions = await putEntry(agent, { Kind: "service-intentions", Name: "web", Sources: [{ Name: "x", Action: "deny" }] }, { token: webReader });
  assert.equal(noIntentions.status, 403);
  assert.match(noIntentions.text, /lacks permission 'intentions:write' on "web"/);

  const writer = await createToken(agent, { rules: 'service "web" { policy = "write" intentions = "write" }\nmesh = "write"' });
  assert.equal((await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "grpc" }, { token: writer })).json, true);
  assert.equal((await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: { protocol: "http" } }, { token: writer })).json, true);
  assert.equal((await putEntry(agent, { Kind: "service-intentions", Name: "web", Sources: [{ Name: "x", Action: "deny" }] }, { token: writer })).json, true);
});
