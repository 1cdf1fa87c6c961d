import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSpiffeId } from "../../src/certs/index.js";
import { createToken, setProtocol, startAgent, type TestAgent } from "./catalog-fixture.js";

const TD = "7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c.consul";
const uri = (svc: string, td = TD) => `spiffe://${td}/ns/default/dc/dc1/svc/${svc}`;
const authorize = (agent: TestAgent, body: unknown, token?: string) =>
  agent.req("/v1/agent/connect/authorize", { method: "POST", body, ...(token !== undefined ? { token } : {}) });
const putIntention = (agent: TestAgent, src: string, dst: string, body: unknown, token?: string) =>
  agent.req(`/v1/connect/intentions/exact?source=${src}&destination=${dst}`, { method: "PUT", body, ...(token ? { token } : {}) });

// The dev agent reads ClientCertURI with the sidecar's own parser: the forms it must accept.
const parseConnectUri = (text: string) => {
  const r = parseSpiffeId(text);
  return r.ok ? r.value : undefined;
};

test("SPIFFE URIs parse into service, agent, server, mesh-gateway and signing IDs", () => {
  assert.deepEqual(parseConnectUri(uri("web")), { kind: "service", trustDomain: TD, partition: "default", namespace: "default", datacenter: "dc1", service: "web" });
  assert.equal(parseConnectUri(`spiffe://${TD}/ap/team1/ns/default/dc/dc1/svc/web`)?.kind, "service");
  assert.equal(parseConnectUri(`spiffe://${TD}/ns/default/dc/dc1/svc/we%2Fb`)?.kind, "service");
  assert.equal(parseConnectUri(`spiffe://${TD}/agent/client/dc/dc1/id/node1`)?.kind, "agent");
  assert.equal(parseConnectUri(`spiffe://${TD}/agent/server/dc/dc1`)?.kind, "server");
  assert.equal(parseConnectUri(`spiffe://${TD}/gateway/mesh/dc/dc1`)?.kind, "mesh-gateway");
  assert.equal(parseConnectUri(`spiffe://${TD}`)?.kind, "signing");
  assert.equal(parseConnectUri("spiffe://nodot"), undefined);
  assert.equal(parseConnectUri(`http://${TD}/ns/default/dc/dc1/svc/web`), undefined);
  assert.equal(parseConnectUri(`spiffe://${TD}/svc/web`), undefined);
  assert.equal(parseConnectUri("not a uri"), undefined);
});

test("authorize is POST only and validates in Consul's order with its 400 texts", async (t) => {
  const agent = await startAgent(t);
  const get = await agent.req("/v1/agent/connect/authorize");
  assert.deepEqual([get.status, get.headers.get("allow")], [405, "OPTIONS,POST"]);
  const cases: Array<[unknown, string]> = [
    ["{not json", "Request decode failed: "],
    [{ Target: "db", Colour: 1 }, 'Request decode failed: json: unknown field "Colour"'],
    [{ ClientCertURI: "http://x/y" }, "Target service must be specified"],
    [{ Target: "db", ClientCertURI: "http://x/y" }, "ClientCertURI not a valid Connect identifier"],
    [{ Target: "db", ClientCertURI: `spiffe://${TD}/nope` }, "ClientCertURI not a valid Connect identifier"],
    [{ Target: "db", ClientCertURI: `spiffe://${TD}/agent/client/dc/dc1/id/node1` }, "ClientCertURI not a valid Service identifier"],
    [{ Target: "db", ClientCertURI: `spiffe://${TD}` }, "ClientCertURI not a valid Service identifier"],
    [{ Target: "db", ClientCertURI: `spiffe://${TD}/ap/team1/ns/default/dc/dc1/svc/web` }, 'Mismatched partitions: "team1" != "default"'],
  ];
  for (const [body, text] of cases) {
    const res = await authorize(agent, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.ok(res.text.startsWith(text), `${res.text} should start with ${text}`);
  }
});

test("decisions: default allow without ACLs, L4 reasons with String(), wildcards, L7 as deny; serial and trust domain unchecked", async (t) => {
  const agent = await startAgent(t);
  const ask = async (src: string, target: string, td?: string) =>
    (await authorize(agent, { Target: target, ClientCertURI: uri(src, td), ClientCertSerial: "04:00:00:00:00:01:15:4b:5a:c3:94" })).json;
  assert.deepEqual(await ask("web", "db"), { Authorized: true, Reason: "Default behavior configured by ACLs" });
  await putIntention(agent, "*", "db", { Action: "deny" });
  await putIntention(agent, "web", "db", { Action: "allow" });
  await setProtocol(agent, "db", "http");
  await putIntention(agent, "admin", "db", { Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] });
  assert.deepEqual(await ask("web", "db"), { Authorized: true, Reason: "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)" });
  assert.deepEqual(await ask("web", "db", "other-domain.consul"), { Authorized: true, Reason: "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)" });
  assert.deepEqual(await ask("api", "db"), { Authorized: false, Reason: "Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)" });
  assert.deepEqual(await ask("admin", "db"), { Authorized: false, Reason: "Matched L7 intention: default/admin => default/db (Precedence: 9, Permissions: 1)" });
  const legacy = await agent.req("/v1/connect/intentions", { method: "POST", body: { SourceName: "ops", DestinationName: "cache", Action: "allow" } });
  assert.deepEqual(await ask("ops", "cache"), { Authorized: true, Reason: `Matched L4 intention: default/ops => default/cache (ID: ${legacy.json.ID}, Precedence: 9, Action: ALLOW)` });
  const res = await authorize(agent, { Target: "db", ClientCertURI: uri("web") });
  assert.equal(res.headers.get("x-consul-index"), null);
});

test("with ACLs on, authorize needs service:write on Target and the default follows the ACL default policy", async (t) => {
  const deny = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "deny" });
  const db = await createToken(deny, { serviceIdentities: ["db"] });
  const forbidden = await authorize(deny, { Target: "web", ClientCertURI: uri("api") }, db);
  assert.equal(forbidden.status, 403);
  assert.match(forbidden.text, /Permission denied/);
  assert.deepEqual((await authorize(deny, { Target: "db", ClientCertURI: uri("api") }, db)).json, { Authorized: false, Reason: "Default behavior configured by ACLs" });
  await putIntention(deny, "api", "db", { Action: "allow" }, deny.managementToken);
  assert.equal((await authorize(deny, { Target: "db", ClientCertURI: uri("api") }, db)).json.Authorized, true);
  const badToken = await authorize(deny, { Target: "db", ClientCertURI: uri("api") }, "no-such-token");
  assert.equal(badToken.status, 403);

  const allow = await startAgent(t, { aclsEnabled: true, aclDefaultPolicy: "allow" });
  assert.deepEqual((await authorize(allow, { Target: "db", ClientCertURI: uri("api") }, allow.managementToken)).json, { Authorized: true, Reason: "Default behavior configured by ACLs" });
});
