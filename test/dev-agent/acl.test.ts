import assert from "node:assert/strict";
import { test } from "node:test";
import { call, startMiniAgent } from "./server-fixture.js";

const ANON_SUFFIX = ". The anonymous token is used implicitly when a request does not specify a token.";

test("ACLs off: every /v1/acl/* path answers 401 after the 405 method check", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: false });
  for (const [method, path] of [
    ["GET", "/v1/acl/token/self"],
    ["PUT", "/v1/acl/bootstrap"],
    ["PUT", "/v1/acl/token"],
    ["GET", "/v1/acl/policies"],
    ["GET", "/v1/acl/auth-methods"],
  ] as const) {
    const res = await call(agent.url, path, { method, token: agent.managementToken });
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.equal(res.text, "ACL support disabled");
    assert.equal(res.headers.get("x-consul-default-acl-policy"), "allow");
  }
  const wrong = await call(agent.url, "/v1/acl/bootstrap");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.text, "method GET not allowed");
  assert.equal(wrong.headers.get("allow"), "OPTIONS,PUT");
  // with ACLs off every other check passes
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token: "no-such-token" })).status, 200);
});

test("bootstrap is refused: the initial management token already bootstrapped the cluster", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true });
  const res = await call(agent.url, "/v1/acl/bootstrap", { method: "PUT" });
  assert.equal(res.status, 403);
  assert.equal(res.text, `Permission denied: ACL bootstrap no longer allowed (reset index: ${agent.acl.bootstrapIndex})`);
});

test("token create with a service identity; token/self by ?token=, X-Consul-Token and Bearer", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  const self = await call(agent.url, "/v1/acl/token/self", { token: mgmt });
  assert.equal(self.status, 200);
  assert.equal(self.json.SecretID, mgmt);
  assert.equal(self.json.Description, "Initial Management Token");
  assert.deepEqual(self.json.Policies, [{ ID: "00000000-0000-0000-0000-000000000001", Name: "global-management" }]);

  const created = await call(agent.url, "/v1/acl/token", {
    method: "PUT",
    token: mgmt,
    body: { Description: "web sidecar", ServiceIdentities: [{ ServiceName: "web" }, { service_name: "web", Datacenters: ["dc1"] }] },
  });
  assert.equal(created.status, 200, created.text);
  const t = created.json;
  assert.match(t.AccessorID, /^[0-9a-f-]{36}$/);
  assert.match(t.SecretID, /^[0-9a-f-]{36}$/);
  assert.equal(t.Description, "web sidecar");
  assert.deepEqual(t.ServiceIdentities, [{ ServiceName: "web" }], "duplicates merge; all datacenters wins");
  assert.equal(t.Local, false);
  assert.equal(t.Policies, undefined);
  assert.match(t.CreateTime, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  assert.equal(typeof t.Hash, "string");
  assert.equal(t.CreateIndex, t.ModifyIndex);

  const inits: Array<{ token?: string; headers?: Record<string, string> }> = [
    { token: t.SecretID },
    { headers: { Authorization: `Bearer ${t.SecretID}` } },
    { headers: { authorization: `bearer   ${t.SecretID} extra` } },
  ];
  for (const init of inits) {
    const me = await call(agent.url, "/v1/acl/token/self", init);
    assert.equal(me.status, 200, JSON.stringify(init));
    assert.equal(me.json.AccessorID, t.AccessorID);
    assert.equal(me.json.SecretID, t.SecretID);
  }
  // ?token= beats the header
  const byQuery = await call(agent.url, `/v1/acl/token/self?token=${t.SecretID}`, { token: mgmt });
  assert.equal(byQuery.json.AccessorID, t.AccessorID);

  const none = await call(agent.url, "/v1/acl/token/self");
  assert.equal(none.status, 403);
  assert.equal(none.text, "token does not exist: ACL not found");
  const unknown = await call(agent.url, "/v1/acl/token/self", { token: "5e1fd3b0-0000-4000-8000-000000000000" });
  assert.equal(unknown.status, 403);
  assert.equal(unknown.text, "token does not exist: ACL not found");
  const anon = await call(agent.url, "/v1/acl/token/self", { token: "anonymous" });
  assert.equal(anon.json.AccessorID, "00000000-0000-0000-0000-000000000002");
  assert.equal(anon.json.Description, "Anonymous Token");
  // an unknown secret is refused wherever a token is checked
  const leaf = await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token: "not-a-token" });
  assert.equal(leaf.status, 403);
  assert.equal(leaf.text, "token does not exist: ACL not found");
});

test("token create validation: Consul's 500 texts and 400 decode errors", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true });
  const put = (body: unknown) => call(agent.url, "/v1/acl/token", { method: "PUT", token: agent.managementToken, body });
  const cases: Array<[unknown, number, string]> = [
    [{ ServiceIdentities: [{ ServiceName: "Web!" }] }, 500, `Service identity "Web!" has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed`],
    [{ ServiceIdentities: [{}] }, 500, "Service identity is missing the service name field on this token"],
    [{ Local: true, ServiceIdentities: [{ ServiceName: "web", Datacenters: ["dc1"] }] }, 500, `Service identity "web" cannot specify a list of datacenters on a local token`],
    [{ NodeIdentities: [{ NodeName: "n1" }] }, 500, `Node identity "n1" is missing the datacenter field on this token`],
    [{ Policies: [{ Name: "nope" }] }, 500, `No such ACL policy with name "nope"`],
    [{ Policies: [{ ID: "6a1a2b3c-0000-4000-8000-000000000000" }] }, 500, `No such ACL policy with ID "6a1a2b3c-0000-4000-8000-000000000000"`],
    [{ AccessorID: "abc" }, 500, "Invalid Token: AccessorID - not a valid UUID"],
    [{ SecretID: "00000000-0000-0000-0000-000000000099" }, 500, `Invalid Token: SecretID - UUIDs with the prefix "00000000-0000-0000-0000-0000000000" are reserved`],
    [{ ExpirationTTL: "25h" }, 500, "ExpirationTime cannot be more than 24h0m0s in the future (was 25h0m0s)"],
    [{ ExpirationTTL: "10s" }, 500, "ExpirationTime cannot be less than 1m0s in the future (was 10s)"],
    [{ AuthMethod: "k8s" }, 500, "AuthMethod field is disallowed outside of login"],
    [{ Foo: 1 }, 400, 'Token decoding failed: json: unknown field "Foo"'],
    [{ Description: 5 }, 400, "Token decoding failed: json: cannot unmarshal number into Go struct field Description of type string"],
    ["{not json", 400, ""],
  ];
  for (const [body, status, text] of cases) {
    const res = await put(body);
    assert.equal(res.status, status, `${JSON.stringify(body)} → ${res.text}`);
    if (text) assert.equal(res.text, text);
    else assert.match(res.text, /^Token decoding failed: /);
  }
  const ttl = await put({ ExpirationTTL: "1h", Description: "short" });
  assert.equal(ttl.status, 200);
  assert.equal(new Date(ttl.json.ExpirationTime).getTime() - new Date(ttl.json.CreateTime).getTime(), 3_600_000);
  const chosen = await put({ AccessorID: "6b4f1c2e-1111-4222-8333-444455556666", SecretID: "7c5f1c2e-1111-4222-8333-444455556666" });
  assert.equal(chosen.status, 200);
  assert.equal(chosen.json.SecretID, "7c5f1c2e-1111-4222-8333-444455556666");
  const dup = await put({ AccessorID: "6b4f1c2e-1111-4222-8333-444455556666" });
  assert.equal(dup.text, "Invalid Token: AccessorID is already in use");
});

test("token read, list, update and delete: hidden secrets, 404s and the anonymous token's protection", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  const readOnly = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { Policies: [{ Name: "builtin/global-read-only" }] } })).json;
  const web = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { ServiceIdentities: [{ ServiceName: "web" }] } })).json;

  const asMgmt = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { token: mgmt });
  assert.equal(asMgmt.status, 200);
  assert.equal(asMgmt.json.SecretID, web.SecretID);
  assert.ok(Number(asMgmt.headers.get("x-consul-index")) >= 1);
  const asReader = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { token: readOnly.SecretID });
  assert.equal(asReader.json.SecretID, "<hidden>");
  const expanded = await call(agent.url, `/v1/acl/token/${readOnly.AccessorID}?expanded`, { token: mgmt });
  assert.equal(expanded.json.ExpandedPolicies[0].Name, "builtin/global-read-only");
  assert.equal(expanded.json.AgentACLDefaultPolicy, "deny");

  const asWeb = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { token: web.SecretID });
  assert.equal(asWeb.status, 403);
  assert.equal(asWeb.text, `Permission denied: token with AccessorID '${web.AccessorID}' lacks permission 'acl:read'`);

  const missing = await call(agent.url, "/v1/acl/token/4d2c0a1e-0000-4000-8000-000000000000", { token: mgmt });
  assert.equal(missing.status, 404);
  assert.equal(missing.text, "Requested token does not exist: ACL not found");
  const noId = await call(agent.url, "/v1/acl/token/", { token: mgmt });
  assert.equal(noId.status, 400);
  assert.equal(noId.text, "Missing token AccessorID");

  const list = await call(agent.url, "/v1/acl/tokens", { token: readOnly.SecretID });
  assert.equal(list.status, 200);
  assert.equal(list.json.length, 4);
  assert.ok(list.json.every((t: { SecretID: string }) => t.SecretID === "<hidden>"));
  assert.ok(list.json.some((t: { AccessorID: string }) => t.AccessorID === "00000000-0000-0000-0000-000000000002"));

  const updated = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, {
    method: "PUT",
    token: mgmt,
    body: { Description: "now db", ServiceIdentities: [{ ServiceName: "db" }] },
  });
  assert.equal(updated.status, 200, updated.text);
  assert.equal(updated.json.Description, "now db");
  assert.ok(updated.json.ModifyIndex > web.ModifyIndex);
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/db", { token: web.SecretID })).status, 200, "new rules apply at once");
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token: web.SecretID })).status, 403);
  const mismatch = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { method: "PUT", token: mgmt, body: { AccessorID: readOnly.AccessorID } });
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.text, "Token Accessor ID in URL and payload do not match");
  const secret = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { method: "PUT", token: mgmt, body: { SecretID: readOnly.SecretID } });
  assert.equal(secret.status, 500);
  assert.equal(secret.text, "Changing a token's SecretID is not permitted");

  const anonDel = await call(agent.url, "/v1/acl/token/00000000-0000-0000-0000-000000000002", { method: "DELETE", token: mgmt });
  assert.equal(anonDel.status, 500);
  assert.equal(anonDel.text, "Delete operation not permitted on the anonymous token");
  const del = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { method: "DELETE", token: mgmt });
  assert.equal(del.status, 200);
  assert.equal(del.json, true);
  const gone = await call(agent.url, `/v1/acl/token/${web.AccessorID}`, { method: "DELETE", token: mgmt });
  assert.equal(gone.status, 404);
  assert.equal(gone.text, "Cannot find token to delete");
  const deleted = await call(agent.url, "/v1/acl/token/self", { token: web.SecretID });
  assert.equal(deleted.text, "token does not exist: ACL not found");
});

test("default policy: deny refuses the anonymous token, allow lets it through except for acl:*", async () => {
  {
    await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
    const res = await call(agent.url, "/v1/agent/connect/ca/leaf/web");
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("x-consul-default-acl-policy"), "deny");
  }
  {
    await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "allow" });
    assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web")).status, 200);
    assert.equal((await call(agent.url, "/v1/agent/self")).status, 200);
    const acl = await call(agent.url, "/v1/acl/tokens");
    assert.equal(acl.status, 403);
    assert.equal(acl.text, `Permission denied: anonymous token lacks permission 'acl:read'${ANON_SUFFIX}`);
    // a rule that denies still wins under allow
    const mgmt = agent.managementToken;
    const pol = await call(agent.url, "/v1/acl/policy", { method: "PUT", token: mgmt, body: { Name: "no-db", Rules: 'service "db" { policy = "deny" }' } });
    const tok = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { Policies: [{ ID: pol.json.ID }] } })).json;
    assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/db", { token: tok.SecretID })).status, 403);
    assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token: tok.SecretID })).status, 200);
  }
});

test("policy rules: exact beats prefix, the longest prefix wins, deny wins a merge, JSON rules work too", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  const mkPolicy = async (Name: string, Rules: string) => {
    const res = await call(agent.url, "/v1/acl/policy", { method: "PUT", token: mgmt, body: { Name, Rules } });
    assert.equal(res.status, 200, res.text);
    return res.json.ID as string;
  };
  const p1 = await mkPolicy(
    "svc",
    `# services
service_prefix "" { policy = "write" }
service "db" { policy = "read" }
service_prefix "web" { policy = "write" }
service_prefix "web-" { policy = "read" }
agent_prefix "node" { policy = "read" }`,
  );
  const p2 = await mkPolicy("svc-json", JSON.stringify({ service: { cache: { policy: "deny" } } }));
  const tok = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { Policies: [{ ID: p1 }, { Name: "svc-json" }] } })).json;
  assert.deepEqual(tok.Policies, [{ ID: p1, Name: "svc" }, { ID: p2, Name: "svc-json" }]);
  const leaf = (svc: string) => call(agent.url, `/v1/agent/connect/ca/leaf/${svc}`, { token: tok.SecretID }).then((r) => r.status);
  assert.equal(await leaf("api"), 200, "empty prefix grants write");
  assert.equal(await leaf("db"), 403, "exact read beats the prefix write");
  assert.equal(await leaf("webapp"), 200, "prefix web write");
  assert.equal(await leaf("web-api"), 403, "longest prefix web- is read only");
  assert.equal(await leaf("cache"), 403, "deny from the JSON policy");
  assert.equal((await call(agent.url, "/v1/agent/self", { token: tok.SecretID })).status, 200, "agent_prefix node covers node1");
});

test("policy endpoints: CRUD, name lookup, stubs without Rules, validation texts, builtin protection", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  const put = (body: unknown, path = "/v1/acl/policy") => call(agent.url, path, { method: "PUT", token: mgmt, body });
  const created = await put({ Name: "web-svc", Description: "web", Rules: 'service "web" { policy = "write" }', Datacenters: ["dc1"] });
  assert.equal(created.status, 200);
  const p = created.json;
  assert.deepEqual(Object.keys(p).sort(), ["CreateIndex", "Datacenters", "Description", "Hash", "ID", "ModifyIndex", "Name", "Rules"]);
  assert.equal((await call(agent.url, `/v1/acl/policy/${p.ID}`, { token: mgmt })).json.Name, "web-svc");
  assert.equal((await call(agent.url, "/v1/acl/policy/name/web-svc", { token: mgmt })).json.ID, p.ID);
  const missing = await call(agent.url, "/v1/acl/policy/name/nope", { token: mgmt });
  assert.equal(missing.status, 404);
  assert.equal(missing.text, "Requested policy does not exist: ACL not found");
  const list = (await call(agent.url, "/v1/acl/policies", { token: mgmt })).json;
  assert.deepEqual(list.map((x: { Name: string }) => x.Name), ["global-management", "builtin/global-read-only", "web-svc"]);
  assert.ok(list.every((x: object) => !("Rules" in x)));

  const cases: Array<[unknown, number, string | RegExp]> = [
    [{ Name: "" }, 500, "Invalid Policy: no Name is set"],
    [{ Name: "a b" }, 500, "Invalid Policy: invalid Name. Only alphanumeric characters, a single '/', '-' and '_' are allowed"],
    [{ Name: "builtin/x" }, 500, "Invalid Policy: invalid Name. Names cannot be prefixed with '/' or 'builtin/'"],
    [{ Name: "web-svc" }, 500, 'Invalid Policy: A Policy with Name "web-svc" already exists'],
    [{ Name: "x", ID: "abc" }, 400, "Cannot specify the ID when creating a new policy"],
    [{ Name: "x", Rules: 'service "a" { policy = "bogus" }' }, 500, /^Invalid service policy: &acl\.ServiceRule\{Name:"a", Policy:"bogus"/],
    [{ Name: "x", Rules: 'service "a" { policy = "read"\n policy = "write" }' }, 500, /^Failed to parse ACL rules: .*was already set\. Each argument can only be defined once$/],
    [{ Name: "x", Rules: 'service "a" {' }, 500, /^Failed to parse ACL rules: /],
    [{ Name: "x", Rules: 'acl = "sudo"' }, 500, 'Invalid acl policy: "sudo"'],
    [{ Name: "x", Bogus: 1 }, 400, 'Policy decoding failed: json: unknown field "Bogus"'],
  ];
  for (const [body, status, text] of cases) {
    const res = await put(body);
    assert.equal(res.status, status, `${JSON.stringify(body)} → ${res.text}`);
    if (typeof text === "string") assert.equal(res.text, text);
    else assert.match(res.text, text);
  }

  const upd = await put({ Name: "web-svc2", Rules: 'service "web" { policy = "read" }' }, `/v1/acl/policy/${p.ID}`);
  assert.equal(upd.status, 200, upd.text);
  assert.equal(upd.json.Name, "web-svc2");
  assert.equal(upd.json.Datacenters, undefined);
  assert.ok(upd.json.ModifyIndex > p.ModifyIndex);
  const mismatch = await put({ ID: "00000000-0000-0000-0000-000000000001", Name: "x" }, `/v1/acl/policy/${p.ID}`);
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.text, "Policy ID in URL and payload do not match");
  const builtin = await put({ Name: "global-management", Rules: "" }, "/v1/acl/policy/00000000-0000-0000-0000-000000000001");
  assert.equal(builtin.status, 500);
  assert.equal(builtin.text, "Changing the Rules for the builtin global-management policy is not permitted");
  const delBuiltin = await call(agent.url, "/v1/acl/policy/00000000-0000-0000-0000-000000000001", { method: "DELETE", token: mgmt });
  assert.equal(delBuiltin.text, "Delete operation not permitted on the builtin global-management policy");
  const del = await call(agent.url, `/v1/acl/policy/${p.ID}`, { method: "DELETE", token: mgmt });
  assert.equal(del.json, true);
  const again = await call(agent.url, `/v1/acl/policy/${p.ID}`, { method: "DELETE", token: mgmt });
  assert.equal(again.status, 404);
  assert.equal(again.text, "Cannot find policy to delete");
});

test("HTTP front: 405 with Allow, OPTIONS, 404 texts, ?ns= and X-Consul-Namespace refused", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true });
  const wrong = await call(agent.url, "/v1/acl/token");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "OPTIONS,PUT");
  assert.equal(wrong.text, "method GET not allowed");
  const leafPost = await call(agent.url, "/v1/agent/connect/ca/leaf/web", { method: "POST" });
  assert.equal(leafPost.status, 405);
  assert.equal(leafPost.headers.get("allow"), "OPTIONS,GET");

  const options = await call(agent.url, "/v1/acl/token/abc", { method: "OPTIONS" });
  assert.equal(options.status, 200);
  assert.equal(options.headers.get("allow"), "OPTIONS,GET,PUT,DELETE");
  assert.equal(options.text, "");

  const unknown = await call(agent.url, "/v1/nope");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.text, "Invalid URL path: not a recognized HTTP API endpoint\n");
  const outside = await call(agent.url, "/nope");
  assert.equal(outside.text, "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n");
  const aclUnknown = await call(agent.url, "/v1/acl/whatever", { token: agent.managementToken });
  assert.equal(aclUnknown.status, 404);

  const ns = await call(agent.url, "/v1/agent/connect/ca/roots?ns=default");
  assert.equal(ns.status, 400);
  assert.equal(ns.text, 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature');
  const nsHeader = await call(agent.url, "/v1/acl/token/self", { headers: { "X-Consul-Namespace": "default" } });
  assert.equal(nsHeader.status, 400);
  assert.equal(nsHeader.text, 'Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature');
});
