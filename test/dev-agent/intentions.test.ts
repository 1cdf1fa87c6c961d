import assert from "node:assert/strict";
import { test } from "node:test";
import { createToken, setProtocol, startAgent, type TestAgent } from "./catalog-fixture.js";

const put = (agent: TestAgent, src: string, dst: string, body: unknown, token?: string) =>
  agent.req(`/v1/connect/intentions/exact?source=${encodeURIComponent(src)}&destination=${encodeURIComponent(dst)}`, {
    method: "PUT", body, ...(token !== undefined ? { token } : {}),
  });

test("exact: PUT upserts and answers true, GET returns the object, DELETE answers true, then 404", async (t) => {
  const agent = await startAgent(t);
  const created = await put(agent, "web", "db", { Action: "allow", Description: "web may call db", ID: "ignored" });
  assert.deepEqual([created.status, created.json], [200, true]);
  const got = await agent.req("/v1/connect/intentions/exact?source=web&destination=db");
  assert.equal(got.headers.get("x-consul-knownleader"), "true");
  assert.deepEqual(got.json, {
    Description: "web may call db", SourceNS: "default", SourceName: "web", DestinationNS: "default", DestinationName: "db",
    SourceType: "consul", Action: "allow", Precedence: 9, CreateIndex: got.json.CreateIndex, ModifyIndex: got.json.CreateIndex,
  });
  await put(agent, "web", "db", { Action: "deny" });
  const updated = (await agent.req("/v1/connect/intentions/exact?source=web&destination=db")).json;
  assert.equal(updated.Action, "deny");
  assert.equal(updated.CreateIndex, got.json.CreateIndex);
  assert.ok(updated.ModifyIndex > got.json.ModifyIndex);
  const del = await agent.req("/v1/connect/intentions/exact?source=web&destination=db", { method: "DELETE" });
  assert.deepEqual([del.status, del.json], [200, true]);
  const gone = await agent.req("/v1/connect/intentions/exact?source=web&destination=db");
  assert.deepEqual([gone.status, gone.text], [404, "Intention not found"]);
});

test("legacy ID API: POST returns {ID}, duplicates fail, GET/PUT/DELETE by UUID", async (t) => {
  const agent = await startAgent(t);
  const created = await agent.req("/v1/connect/intentions", {
    method: "POST", body: { SourceName: "web", DestinationName: "db", SourceType: "consul", Action: "allow", Meta: { team: "a" } },
  });
  assert.equal(created.status, 200);
  const id = created.json.ID as string;
  assert.match(id, /^[0-9a-f-]{36}$/);
  const one = (await agent.req(`/v1/connect/intentions/${id}`)).json;
  assert.deepEqual([one.ID, one.Meta, typeof one.CreatedAt, typeof one.UpdatedAt], [id, { team: "a" }, "string", "string"]);
  const dup = await agent.req("/v1/connect/intentions", { method: "POST", body: { SourceName: "web", DestinationName: "db", Action: "deny" } });
  assert.deepEqual([dup.status, dup.text], [500, `duplicate intention found: default/web => default/db (ID: ${id}, Precedence: 9, Action: ALLOW)`]);
  const upd = await agent.req(`/v1/connect/intentions/${id}`, { method: "PUT", body: { SourceName: "*", DestinationName: "db", Action: "deny" } });
  assert.deepEqual(upd.json, { ID: id });
  const after = (await agent.req(`/v1/connect/intentions/${id}`)).json;
  assert.deepEqual([after.SourceName, after.Action, after.Precedence], ["*", "deny", 8]);
  assert.equal((await agent.req("/v1/connect/intentions/exact?source=web&destination=db")).status, 404);
  assert.deepEqual((await agent.req(`/v1/connect/intentions/${id}`, { method: "DELETE" })).json, true);
  assert.equal((await agent.req(`/v1/connect/intentions/${id}`)).status, 404);
  assert.equal((await agent.req("/v1/connect/intentions/not-a-uuid")).status, 400);
});

test("validation: partial wildcards, exact names under a wildcard namespace and bad actions are refused", async (t) => {
  const agent = await startAgent(t);
  const partial = await put(agent, "web*", "db", { Action: "allow" });
  assert.equal(partial.status, 500);
  assert.match(partial.text, /SourceName: wildcard character '\*' cannot be used with partial values/);
  const ns = await put(agent, "*/web", "db", { Action: "allow" });
  assert.match(ns.text, /SourceName: exact value cannot follow wildcard namespace/);
  const action = await put(agent, "web", "db", { Action: "maybe" });
  assert.match(action.text, /Action must be set to 'allow' or 'deny'/);
  const unknown = await put(agent, "web", "db", { Action: "allow", Colour: 1 });
  assert.deepEqual([unknown.status, unknown.text], [400, 'Request decode failed: json: unknown field "Colour"']);
});

test("the list is ordered by precedence then names, supports filter, and blocking readers wake on writes", async (t) => {
  const agent = await startAgent(t);
  for (const [s, d] of [["*", "db"], ["web", "*"], ["api", "db"], ["web", "db"]]) await put(agent, s!, d!, { Action: "allow" });
  const list = await agent.req("/v1/connect/intentions");
  assert.deepEqual(list.json.map((i: { SourceName: string; DestinationName: string }) => `${i.SourceName}>${i.DestinationName}`), ["api>db", "web>db", "*>db", "web>*"]);
  const filtered = await agent.req(`/v1/connect/intentions?filter=${encodeURIComponent('SourceName == "web"')}`);
  assert.equal(filtered.json.length, 2);
  const index = Number(list.headers.get("x-consul-index"));
  const blocked = agent.req(`/v1/connect/intentions?index=${index}&wait=30s`);
  await put(agent, "cache", "db", { Action: "deny" });
  const woke = await blocked;
  assert.equal(woke.json.length, 5);
  assert.ok(Number(woke.headers.get("x-consul-index")) > index);
});

test("match is keyed by the names exactly as given and includes wildcards, highest precedence first", async (t) => {
  const agent = await startAgent(t);
  await put(agent, "web", "db", { Action: "allow" });
  await put(agent, "*", "db", { Action: "deny" });
  await put(agent, "web", "*", { Action: "deny" });
  const res = await agent.req("/v1/connect/intentions/match?by=destination&name=db&name=default/cache");
  assert.deepEqual(Object.keys(res.json), ["db", "default/cache"]);
  assert.deepEqual(res.json.db.map((i: { Precedence: number }) => i.Precedence), [9, 8, 6]);
  assert.deepEqual(res.json["default/cache"].map((i: { SourceName: string }) => i.SourceName), ["web"]);
  const bySource = await agent.req("/v1/connect/intentions/match?by=source&name=api");
  assert.deepEqual(bySource.json.api.map((i: { SourceName: string }) => i.SourceName), ["*"]);
  const index = Number(res.headers.get("x-consul-index"));
  const blocked = agent.req(`/v1/connect/intentions/match?by=destination&name=db&index=${index}`);
  await put(agent, "api", "db", { Action: "allow" });
  assert.equal((await blocked).json.db.length, 4);
});

test("missing or bad query parameters give Consul's 500 texts", async (t) => {
  const agent = await startAgent(t);
  const cases: Array<[string, string]> = [
    ["/v1/connect/intentions/match?name=db", "required query parameter 'by' not set"],
    ["/v1/connect/intentions/match?by=source&by=destination&name=db", "required query parameter 'by' not set"],
    ["/v1/connect/intentions/match?by=sideways&name=db", "'by' parameter must be one of 'source' or 'destination'"],
    ["/v1/connect/intentions/match?by=source", "required query parameter 'name' not set"],
    ["/v1/connect/intentions/check?destination=db", "required query parameter 'source' not set"],
    ["/v1/connect/intentions/check?source=web", "required query parameter 'destination' not set"],
    ["/v1/connect/intentions/exact?destination=db", "required query parameter 'source' not set"],
    ["/v1/connect/intentions/exact?source=a/b/c/d&destination=db", `name "a/b/c/d" is invalid: input can contain at most two '/'`],
  ];
  for (const [path, text] of cases) {
    const res = await agent.req(path);
    assert.deepEqual([res.status, res.text], [500, text], path);
  }
  const del = await agent.req("/v1/connect/intentions/exact?source=web", { method: "DELETE" });
  assert.deepEqual([del.status, del.text], [500, "required query parameter 'destination' not set"]);
});

test("check answers {Allowed} with the authorize logic: default allow without ACLs, L7 as deny", async (t) => {
  const agent = await startAgent(t);
  const check = async (s: string, d: string) => (await agent.req(`/v1/connect/intentions/check?source=${s}&destination=${d}`)).json;
  assert.deepEqual(await check("web", "db"), { Allowed: true });
  await put(agent, "web", "db", { Action: "deny" });
  assert.deepEqual(await check("web", "db"), { Allowed: false });
  await setProtocol(agent, "db", "http");
  await put(agent, "api", "db", { Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] });
  assert.deepEqual(await check("api", "db"), { Allowed: false });
  const l7 = (await agent.req("/v1/connect/intentions/exact?source=api&destination=db")).json;
  assert.equal(l7.Action, undefined);
  assert.equal(l7.Permissions.length, 1);
});

test("ACLs: a service identity reads every intention and writes none; lists drop what the token cannot read", async (t) => {
  const agent = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  const mgmt = agent.managementToken;
  await put(agent, "web", "db", { Action: "allow" }, mgmt);
  await put(agent, "api", "cache", { Action: "allow" }, mgmt);
  const identity = await createToken(agent, { serviceIdentities: ["web"] });
  const webOnly = await createToken(agent, { rules: 'service "web" { policy = "read" }' });
  assert.equal((await agent.req("/v1/connect/intentions", { token: identity })).json.length, 2);
  const few = await agent.req("/v1/connect/intentions", { token: webOnly });
  assert.deepEqual(few.json.map((i: { SourceName: string }) => i.SourceName), ["web"]);
  assert.equal(few.headers.get("x-consul-results-filtered-by-acls"), "true");
  const write = await put(agent, "web", "db", { Action: "deny" }, identity);
  assert.equal(write.status, 403);
  assert.match(write.text, /Permission denied/);
  assert.equal((await agent.req("/v1/connect/intentions/exact?source=api&destination=cache", { token: webOnly })).status, 403);
  assert.equal((await agent.req("/v1/connect/intentions/match?by=destination&name=cache", { token: webOnly })).status, 403);
  assert.deepEqual((await agent.req("/v1/connect/intentions/check?source=x&destination=web", { token: webOnly })).json, { Allowed: false });
  assert.equal((await agent.req("/v1/connect/intentions/check?source=x&destination=db", { token: webOnly })).status, 403);
});
