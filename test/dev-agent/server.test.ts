// Through the real startDevAgent(): the ACL, CA and self modules wired with everything else.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { call, openssl } from "./server-fixture.js";

test("startDevAgent: a service-identity token gets roots and a verifiable leaf, not agent/self; stop is clean", async () => {
  const agent = await startDevAgent({ aclsEnabled: true, aclDefaultPolicy: "deny", nodeName: "node1", leafCertTtlMs: 3_000 });
  try {
    assert.match(agent.trustDomain, /^[0-9a-f-]{36}\.consul$/);
    const url = agent.httpUrl;
    const mgmt = agent.managementToken;
    const me = await call(url, "/v1/acl/token/self", { token: mgmt });
    assert.equal(me.status, 200);
    assert.equal(me.json.SecretID, mgmt);
    assert.equal(me.headers.get("x-consul-default-acl-policy"), "deny");

    const tok = (await call(url, "/v1/acl/token", { method: "PUT", token: mgmt, body: { ServiceIdentities: [{ ServiceName: "web" }] } })).json;
    const roots = await call(url, "/v1/agent/connect/ca/roots", { token: tok.SecretID });
    assert.equal(roots.status, 200);
    assert.equal(roots.json.TrustDomain, agent.trustDomain);
    const leaf = await call(url, "/v1/agent/connect/ca/leaf/web", { headers: { Authorization: `Bearer ${tok.SecretID}` } });
    assert.equal(leaf.status, 200, leaf.text);
    const v = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": roots.json.Roots[0].RootCert, "leaf.pem": leaf.json.CertPEM });
    assert.equal(v.code, 0, v.stderr);

    const self = await call(url, "/v1/agent/self", { token: tok.SecretID });
    assert.equal(self.status, 403);
    assert.equal(self.text, `Permission denied: token with AccessorID '${tok.AccessorID}' lacks permission 'agent:read' on "node1"`);
    const asMgmt = await call(url, "/v1/agent/self", { token: mgmt });
    assert.equal(asMgmt.json.Stats.consul.acl, "enabled");
    assert.deepEqual(asMgmt.json.DebugConfig.HTTPAddrs, [`tcp://${agent.address}`]);

    // a blocked leaf query is released by stop(): its connection is closed under it (no answer, as when Consul exits)
    const blocked = call(url, `/v1/agent/connect/ca/leaf/web?index=${leaf.json.ModifyIndex}&wait=10m`, { token: tok.SecretID }).then(
      (res) => `answered ${res.status}`,
      (err: Error & { cause?: { code?: string } }) => `closed ${String(err.cause?.code)}`,
    );
    await agent.stop();
    assert.equal(await blocked, "closed UND_ERR_SOCKET");
  } finally {
    await agent.stop();
  }
});

test("startDevAgent with ACLs off: /v1/acl/* is 401, leaves need no token", async () => {
  const agent = await startDevAgent();
  try {
    const res = await call(agent.httpUrl, "/v1/acl/token/self");
    assert.equal(res.status, 401);
    assert.equal(res.text, "ACL support disabled");
    assert.equal((await call(agent.httpUrl, "/v1/agent/connect/ca/leaf/anything")).status, 200);
    assert.equal((await call(agent.httpUrl, "/v1/agent/self")).json.Stats.consul.acl, "disabled");
  } finally {
    await agent.stop();
  }
});
