import assert from "node:assert/strict";
import { test } from "node:test";
import { call, startMiniAgent } from "./server-fixture.js";

test("agent/self with ACLs off: Config, DebugConfig audit fields, Stats strings, Member, Meta", async () => {
  await using agent = await startMiniAgent({ nodeName: "node7" });
  const res = await call(agent.url, "/v1/agent/self");
  assert.equal(res.status, 200);
  const self = res.json;
  assert.equal(self.Config.Datacenter, "dc1");
  assert.equal(self.Config.NodeName, "node7");
  assert.equal(self.Config.NodeID, agent.ctx.cfg.nodeId);
  assert.equal(self.Config.Server, true);
  assert.match(self.Config.Version, /^\d+\.\d+\.\d+/);
  const d = self.DebugConfig;
  assert.equal(d.ACLsEnabled, false);
  assert.deepEqual(
    { a: d.ACLResolverSettings.ACLsEnabled, p: d.ACLResolverSettings.ACLDefaultPolicy, down: d.ACLResolverSettings.ACLDownPolicy },
    { a: false, p: "allow", down: "extend-cache" },
  );
  assert.equal(d.EncryptKey, "hidden");
  assert.equal(d.ACLInitialManagementToken, "hidden");
  assert.equal(d.TLS.InternalRPC.VerifyIncoming, false);
  assert.equal(d.TLS.InternalRPC.KeyFile, "hidden");
  assert.equal(d.TLS.HTTPS.VerifyIncoming, false);
  const port = Number(new URL(agent.url).port);
  assert.deepEqual(d.HTTPAddrs, [`tcp://127.0.0.1:${port}`]);
  assert.equal(d.HTTPPort, port);
  assert.deepEqual(d.HTTPSAddrs, []);
  assert.equal(d.HTTPSPort, -1);
  assert.equal(d.ConnectEnabled, true);
  assert.equal(d.ConnectCAProvider, "consul");
  assert.equal(d.ConnectSidecarMinPort, 21000);
  assert.equal(d.ConnectSidecarMaxPort, 21255);
  assert.equal(d.DevMode, true);
  assert.equal(self.Coord, null);
  assert.equal(self.Stats.consul.acl, "disabled");
  assert.equal(self.Stats.serf_lan.encrypted, "false");
  for (const section of Object.values(self.Stats) as Array<Record<string, unknown>>) {
    for (const v of Object.values(section)) assert.equal(typeof v, "string");
  }
  assert.equal(self.Member.Name, "node7");
  assert.equal(self.Member.Tags.dc, "dc1");
  assert.equal(typeof self.Meta, "object");
  // no secret ever appears
  assert.ok(!res.text.includes(agent.managementToken));
});

test("agent/self with ACLs on needs agent:read on the node name", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny", nodeName: "node1" });
  const anon = await call(agent.url, "/v1/agent/self");
  assert.equal(anon.status, 403);
  assert.equal(
    anon.text,
    `Permission denied: anonymous token lacks permission 'agent:read' on "node1". The anonymous token is used implicitly when a request does not specify a token.`,
  );
  const mgmt = agent.managementToken;
  const web = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { ServiceIdentities: [{ ServiceName: "web" }] } })).json;
  assert.equal((await call(agent.url, "/v1/agent/self", { token: web.SecretID })).status, 403, "a service identity has no agent:read");
  const pol = (await call(agent.url, "/v1/acl/policy", { method: "PUT", token: mgmt, body: { Name: "agent-read", Rules: 'agent_prefix "" { policy = "read" }' } })).json;
  const reader = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { Policies: [{ ID: pol.ID }] } })).json;
  const ok = await call(agent.url, "/v1/agent/self", { token: reader.SecretID });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.Stats.consul.acl, "enabled");
  assert.equal(ok.json.DebugConfig.ACLsEnabled, true);
  assert.equal(ok.json.DebugConfig.ACLResolverSettings.ACLDefaultPolicy, "deny");
  assert.equal(ok.headers.get("x-consul-default-acl-policy"), "deny");
});

test("status leader and peers name the one dev server", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const leader = await call(agent.url, "/v1/status/leader");
  assert.equal(leader.status, 200);
  assert.equal(leader.text, '"127.0.0.1:8300"');
  assert.deepEqual((await call(agent.url, "/v1/status/peers")).json, ["127.0.0.1:8300"]);
  assert.equal((await call(agent.url, "/v1/status/leader", { method: "PUT" })).status, 405);
});
