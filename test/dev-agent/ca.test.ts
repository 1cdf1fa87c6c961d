import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { test } from "node:test";
import { rotateRootBody } from "./ca-rotation.js";
import { call, openssl, startMiniAgent } from "./server-fixture.js";

const COLON_HEX = /^([0-9a-f]{2}:)*[0-9a-f]{2}$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

function keyIdBytes(colon: string): number {
  return colon.split(":").length;
}

test("roots: agent and server endpoints answer the Consul shape with index, cache and leader headers", async () => {
  await using agent = await startMiniAgent();
  const res = await call(agent.url, "/v1/agent/connect/ca/roots");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-cache"), "MISS");
  assert.equal(res.headers.get("x-consul-knownleader"), "true");
  assert.ok(Number(res.headers.get("x-consul-index")) >= 1);
  const body = res.json;
  const uuid = agent.ca.trustDomain.replace(/\.consul$/, "");
  assert.match(body.TrustDomain, /^[0-9a-f-]{36}\.consul$/);
  assert.equal(body.TrustDomain, agent.ca.trustDomain);
  assert.equal(body.Roots.length, 1);
  const r = body.Roots[0];
  assert.equal(body.ActiveRootID, r.ID);
  const cert = new X509Certificate(r.RootCert);
  assert.equal(r.ID, cert.fingerprint.toLowerCase(), "ID is the SHA-1 fingerprint in lowercase colon-hex");
  assert.equal(r.Name, "Consul CA Primary Cert");
  assert.equal(typeof r.SerialNumber, "number");
  assert.equal(r.SerialNumber, Number.parseInt(cert.serialNumber, 16));
  assert.match(r.SigningKeyID, COLON_HEX);
  assert.equal(keyIdBytes(r.SigningKeyID), 32);
  assert.equal(r.ExternalTrustDomain, uuid);
  assert.match(r.NotBefore, RFC3339);
  assert.match(r.NotAfter, RFC3339);
  assert.equal(new Date(r.NotAfter).getTime(), new Date(cert.validTo).getTime());
  assert.ok(r.RootCert.endsWith("-----END CERTIFICATE-----\n"));
  assert.equal(r.IntermediateCerts, null);
  assert.equal(r.Active, true);
  assert.equal(r.PrivateKeyType, "ec");
  assert.equal(r.PrivateKeyBits, 256);
  assert.equal(typeof r.CreateIndex, "number");
  assert.equal(typeof r.ModifyIndex, "number");

  // spec §8.3: CN, URI SAN, CA, key usage, 32-byte SKI = AKI, ten years
  assert.match(cert.subject, new RegExp(`^CN=pri-[0-9a-z]{8}\\.consul\\.ca\\.${uuid.slice(0, 8)}\\.consul$`));
  assert.equal(cert.subjectAltName, `URI:spiffe://${uuid}.consul`);
  assert.equal(cert.ca, true);
  const text = (await openssl(["x509", "-in", "root.pem", "-noout", "-text"], { "root.pem": r.RootCert })).stdout;
  assert.match(text, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
  const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(text)?.[1];
  const aki = /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
  assert.equal(ski?.toLowerCase(), r.SigningKeyID);
  assert.equal(aki, ski);
  const years = (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / (365 * 86_400_000);
  assert.ok(years > 9.9 && years < 10.1, `root lives ${years} years`);

  const server = await call(agent.url, "/v1/connect/ca/roots");
  assert.equal(server.status, 200);
  assert.deepEqual(server.json, body);
  const pem = await call(agent.url, "/v1/connect/ca/roots?pem=true");
  assert.equal(pem.text, r.RootCert);
});

test("leaf: fields match spec §8.2 as openssl reads them, and the chain verifies against the root", async () => {
  await using agent = await startMiniAgent();
  const roots = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  const res = await call(agent.url, "/v1/agent/connect/ca/leaf/web");
  assert.equal(res.status, 200);
  const leaf = res.json;
  assert.equal(res.headers.get("x-consul-index"), String(leaf.ModifyIndex));
  assert.equal(res.headers.get("x-cache"), "MISS");
  assert.equal(leaf.Service, "web");
  assert.equal(leaf.ServiceURI, `spiffe://${agent.ca.trustDomain}/ns/default/dc/dc1/svc/web`);
  assert.equal(leaf.CreateIndex, leaf.ModifyIndex);
  assert.match(leaf.SerialNumber, COLON_HEX);
  assert.match(leaf.PrivateKeyPEM, /^-----BEGIN EC PRIVATE KEY-----\n/);
  assert.match(leaf.ValidAfter, RFC3339);

  const cert = new X509Certificate(leaf.CertPEM);
  assert.equal(cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "").padStart(leaf.SerialNumber.replace(/:/g, "").length, "0"), leaf.SerialNumber.replace(/:/g, ""));
  assert.equal(new Date(cert.validFrom).getTime(), new Date(leaf.ValidAfter).getTime());
  assert.equal(new Date(cert.validTo).getTime(), new Date(leaf.ValidBefore).getTime());
  assert.equal(new Date(leaf.ValidBefore).getTime() - new Date(leaf.ValidAfter).getTime(), 72 * 3_600_000);
  const backdateMs = Date.now() - new Date(leaf.ValidAfter).getTime();
  assert.ok(backdateMs >= 60_000 && backdateMs < 120_000, `NotBefore is about one minute ago (${backdateMs} ms)`);
  // the private key belongs to the certificate
  const pub = createPublicKey(createPrivateKey(leaf.PrivateKeyPEM));
  assert.ok(cert.publicKey.equals(pub));

  const text = (await openssl(["x509", "-in", "leaf.pem", "-noout", "-text"], { "leaf.pem": leaf.CertPEM })).stdout;
  assert.match(text, /Subject:\s*\n/, "empty subject");
  assert.match(text, /Subject Alternative Name: critical\s+URI:spiffe:\/\/[^\s]+\/svc\/web\s*\n/);
  assert.doesNotMatch(text, /DNS:|IP Address:/);
  assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment, Data Encipherment, Key Agreement/);
  assert.match(text, /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  assert.match(text, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(text)?.[1] ?? "";
  const aki = /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1] ?? "";
  assert.equal(keyIdBytes(ski), 32);
  assert.equal(aki.toLowerCase(), roots.Roots[0].SigningKeyID, "AKI is the root's signing key id");

  const verify = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": roots.Roots[0].RootCert, "leaf.pem": leaf.CertPEM });
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /leaf\.pem: OK/);

  // a second non-blocking read revalidates and serves the cached cert
  const again = await call(agent.url, "/v1/agent/connect/ca/leaf/web");
  assert.equal(again.json.SerialNumber, leaf.SerialNumber);
  assert.equal(again.headers.get("x-cache"), "HIT");
  assert.match(again.headers.get("age") ?? "", /^\d+$/);
  // serials come from one increasing counter
  const db = (await call(agent.url, "/v1/agent/connect/ca/leaf/db")).json;
  assert.ok(Number.parseInt(db.SerialNumber.replace(/:/g, ""), 16) > Number.parseInt(leaf.SerialNumber.replace(/:/g, ""), 16));
});

test("leaf: an index below the current answers at once; an equal index blocks until renewal issues a new cert", async () => {
  await using agent = await startMiniAgent({ leafCertTtlMs: 3_000 });
  const first = (await call(agent.url, "/v1/agent/connect/ca/leaf/web")).json;
  assert.equal(new Date(first.ValidBefore).getTime() - new Date(first.ValidAfter).getTime(), 3_000);

  const stale = await call(agent.url, `/v1/agent/connect/ca/leaf/web?index=${first.ModifyIndex - 1}`);
  assert.equal(stale.json.SerialNumber, first.SerialNumber);

  const renewed = await call(agent.url, `/v1/agent/connect/ca/leaf/web?index=${first.ModifyIndex}&wait=30s`);
  assert.equal(renewed.status, 200);
  assert.ok(renewed.json.ModifyIndex > first.ModifyIndex);
  assert.notEqual(renewed.json.SerialNumber, first.SerialNumber);
  assert.equal(renewed.headers.get("x-consul-index"), String(renewed.json.ModifyIndex));
  // renewal happens inside the first cert's lifetime, between 60 % and 90 % of it
  assert.ok(new Date(renewed.json.ValidAfter).getTime() <= new Date(first.ValidBefore).getTime());
});

test("leaf: a blocked query returns the same cert when its wait ends", async () => {
  await using agent = await startMiniAgent();
  const first = (await call(agent.url, "/v1/agent/connect/ca/leaf/web")).json;
  const res = await call(agent.url, `/v1/agent/connect/ca/leaf/web?index=${first.ModifyIndex}&wait=100ms`);
  assert.equal(res.json.SerialNumber, first.SerialNumber);
  assert.equal(res.headers.get("x-consul-index"), String(first.ModifyIndex));
  const bad = await call(agent.url, "/v1/agent/connect/ca/leaf/web?index=1&wait=10");
  assert.equal(bad.status, 400);
  assert.equal(bad.text, "Invalid wait time");
});

test("rotation: a blocked roots query wakes, the old root stays inactive, and leaves are reissued under the new root", async () => {
  await using agent = await startMiniAgent({ leafReissueWindowMs: 500 });
  const token = agent.managementToken;
  const before = await call(agent.url, "/v1/agent/connect/ca/roots");
  const oldRoot = before.json.Roots[0];
  const leaf = (await call(agent.url, "/v1/agent/connect/ca/leaf/web")).json;

  const blockedRoots = call(agent.url, `/v1/agent/connect/ca/roots?index=${before.headers.get("x-consul-index")}`);
  const blockedLeaf = call(agent.url, `/v1/agent/connect/ca/leaf/web?index=${leaf.ModifyIndex}`);
  await waitForBlocked(agent, 2);

  const put = await call(agent.url, "/v1/connect/ca/configuration", {
    method: "PUT",
    token,
    body: rotateRootBody(),
  });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.text, "");

  const after = await blockedRoots;
  assert.ok(Number(after.headers.get("x-consul-index")) > Number(before.headers.get("x-consul-index")));
  assert.equal(after.json.Roots.length, 2);
  const old = after.json.Roots.find((r: { ID: string }) => r.ID === oldRoot.ID);
  const fresh = after.json.Roots.find((r: { ID: string }) => r.ID !== oldRoot.ID);
  assert.equal(old.Active, false);
  assert.equal(fresh.Active, true);
  assert.equal(after.json.ActiveRootID, fresh.ID);
  assert.notEqual(fresh.SigningKeyID, old.SigningKeyID);
  assert.equal(after.json.TrustDomain, before.json.TrustDomain);

  const reissued = (await blockedLeaf).json;
  assert.ok(reissued.ModifyIndex > leaf.ModifyIndex);
  const newOk = await openssl(["verify", "-CAfile", "new.pem", "leaf.pem"], { "new.pem": fresh.RootCert, "leaf.pem": reissued.CertPEM });
  assert.equal(newOk.code, 0, newOk.stderr);
  const oldOnly = await openssl(["verify", "-CAfile", "old.pem", "leaf.pem"], { "old.pem": old.RootCert, "leaf.pem": reissued.CertPEM });
  assert.notEqual(oldOnly.code, 0, "the new leaf does not chain to the old root");
  assert.match(oldOnly.stderr, /error 20 at 0 depth lookup: unable to get local issuer certificate/, "refused for its issuer, not for a bad call");
  // the old leaf still verifies against the old root, which clients keep trusting
  const oldLeaf = await openssl(["verify", "-CAfile", "old.pem", "leaf.pem"], { "old.pem": old.RootCert, "leaf.pem": leaf.CertPEM });
  assert.equal(oldLeaf.code, 0);
});

test("rotation: a leaf due for renewal before the jitter window ends is renewed by its renewal point, not after it expires", async () => {
  // Consul's renewal timer keeps running beside the rotation's jitter: whichever comes first (spec §3.1, §3.2).
  await using agent = await startMiniAgent({ leafCertTtlMs: 10_000, leafReissueWindowMs: 600_000 });
  const leaf = (await call(agent.url, "/v1/agent/connect/ca/leaf/web")).json;
  const blockedLeaf = call(agent.url, `/v1/agent/connect/ca/leaf/web?index=${leaf.ModifyIndex}`);
  await waitForBlocked(agent, 1);
  await agent.ca.rotate();
  const renewed = (await blockedLeaf).json;
  const activeRoot = (await call(agent.url, "/v1/agent/connect/ca/roots")).json.Roots.find((r: { Active: boolean }) => r.Active);
  const v = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": activeRoot.RootCert, "leaf.pem": renewed.CertPEM });
  assert.equal(v.code, 0, "the renewed leaf is signed by the new root");
  // A 10 s leaf is backdated 1 s (a tenth of its life, at most spec §8.2's minute): it was issued at ValidAfter + 1 s.
  const issuedAt = Date.parse(renewed.ValidAfter) + 1_000;
  assert.ok(issuedAt < Date.parse(leaf.ValidBefore), `renewed at ${renewed.ValidAfter} + 1 s, not before the old leaf expired at ${leaf.ValidBefore}`);
});

test("rotation: a non-blocking leaf read right after a rotation revalidates against the new signing key", async () => {
  await using agent = await startMiniAgent({ leafReissueWindowMs: 60_000 });
  const leaf = (await call(agent.url, "/v1/agent/connect/ca/leaf/api")).json;
  await agent.ca.rotate();
  const now = (await call(agent.url, "/v1/agent/connect/ca/leaf/api")).json;
  assert.notEqual(now.SerialNumber, leaf.SerialNumber);
  const roots = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  const active = roots.Roots.find((r: { Active: boolean }) => r.Active);
  const v = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": active.RootCert, "leaf.pem": now.CertPEM });
  assert.equal(v.code, 0, v.stderr);
});

test("configuration: GET shape, LeafCertTTL applies to new leaves, an RSA key type rotates to an RSA root", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const token = agent.managementToken;
  const denied = await call(agent.url, "/v1/connect/ca/configuration");
  assert.equal(denied.status, 403);
  assert.match(denied.text, /^Permission denied: anonymous token lacks permission 'operator:read'\./);

  const got = await call(agent.url, "/v1/connect/ca/configuration", { token });
  assert.equal(got.status, 200);
  assert.equal(got.json.Provider, "consul");
  assert.deepEqual(
    { ...got.json.Config },
    { LeafCertTTL: "72h", IntermediateCertTTL: "8760h", RootCertTTL: "87600h", PrivateKeyType: "ec", PrivateKeyBits: 256, CSRMaxPerSecond: 50, CSRMaxConcurrent: 0, SkipValidate: false },
  );
  assert.equal(got.json.ForceWithoutCrossSigning, false);
  assert.equal(typeof got.json.ModifyIndex, "number");

  const ttl = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", token, body: { Provider: "consul", Config: { LeafCertTTL: "5s" } } });
  assert.equal(ttl.status, 200, ttl.text);
  const roots1 = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  assert.equal(roots1.Roots.length, 1, "a TTL change does not rotate");
  const leaf = (await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token })).json;
  assert.equal(new Date(leaf.ValidBefore).getTime() - new Date(leaf.ValidAfter).getTime(), 5_000);

  const badTtl = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", token, body: { Config: { LeafCertTTL: "9000h" } } });
  assert.equal(badTtl.status, 500);
  assert.match(badTtl.text, /LeafCertTTL must be less than/);
  const unknown = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", token, body: { Bogus: 1 } });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.text, 'Request decode failed: json: unknown field "Bogus"');

  const rsa = await call(agent.url, "/v1/connect/ca/configuration", {
    method: "PUT",
    token,
    body: { Provider: "consul", Config: { PrivateKeyType: "rsa", PrivateKeyBits: 2048 } },
  });
  assert.equal(rsa.status, 200, rsa.text);
  const roots2 = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  const active = roots2.Roots.find((r: { Active: boolean }) => r.Active);
  assert.equal(roots2.Roots.length, 2);
  assert.equal(active.PrivateKeyType, "rsa");
  assert.equal(active.PrivateKeyBits, 2048);
  const leaf2 = (await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token })).json;
  assert.match(leaf2.PrivateKeyPEM, /BEGIN EC PRIVATE KEY/, "leaf keys stay EC P-256 under an RSA CA");
  const text = (await openssl(["x509", "-in", "leaf.pem", "-noout", "-text"], { "leaf.pem": leaf2.CertPEM })).stdout;
  assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
  const v = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": active.RootCert, "leaf.pem": leaf2.CertPEM });
  assert.equal(v.code, 0, v.stderr);
  const cfg = (await call(agent.url, "/v1/connect/ca/configuration", { token })).json;
  assert.equal(cfg.Config.PrivateKeyType, "rsa");
  assert.equal(cfg.Config.LeafCertTTL, "5s");
});

test("configuration: a supplied private key becomes the new root's key and is never echoed", async () => {
  await using agent = await startMiniAgent();
  const gen = await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"], {});
  assert.equal(gen.code, 0, gen.stderr);
  const keyPem = gen.stdout;
  const put = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", body: { Provider: "consul", Config: { PrivateKey: keyPem } } });
  assert.equal(put.status, 200, put.text);
  const roots = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  const active = roots.Roots.find((r: { Active: boolean }) => r.Active);
  assert.ok(new X509Certificate(active.RootCert).publicKey.equals(createPublicKey(createPrivateKey(keyPem))));
  const cfg = await call(agent.url, "/v1/connect/ca/configuration");
  assert.doesNotMatch(cfg.text, /PRIVATE KEY/);
});

test("configuration: a supplied root certificate and key become the active root that signs leaves", async () => {
  await using agent = await startMiniAgent();
  const keyPem = (await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"], {})).stdout;
  const req = await openssl(
    ["req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=byo-root", "-days", "30",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    { "key.pem": keyPem },
  );
  assert.equal(req.code, 0, req.stderr);
  const rootPem = req.stdout;
  const other = (await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"], {})).stdout;
  const mismatch = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", body: { Config: { PrivateKey: other, RootCert: rootPem } } });
  assert.equal(mismatch.status, 500);
  assert.equal(mismatch.text, "private key does not match the root certificate");
  const noKey = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", body: { Config: { RootCert: rootPem } } });
  assert.equal(noKey.status, 500);

  const put = await call(agent.url, "/v1/connect/ca/configuration", { method: "PUT", body: { Provider: "consul", Config: { PrivateKey: keyPem, RootCert: rootPem } } });
  assert.equal(put.status, 200, put.text);
  const roots = (await call(agent.url, "/v1/agent/connect/ca/roots")).json;
  const active = roots.Roots.find((r: { Active: boolean }) => r.Active);
  assert.equal(active.ID, new X509Certificate(rootPem).fingerprint.toLowerCase());
  assert.equal(roots.Roots.length, 2);
  const leaf = (await call(agent.url, "/v1/agent/connect/ca/leaf/web")).json;
  const v = await openssl(["verify", "-CAfile", "root.pem", "leaf.pem"], { "root.pem": rootPem, "leaf.pem": leaf.CertPEM });
  assert.equal(v.code, 0, v.stderr);
});

test("leaf ACL: service:write on the name; anonymous and named tokens get Consul's 403 texts", async () => {
  await using agent = await startMiniAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const anon = await call(agent.url, "/v1/agent/connect/ca/leaf/web");
  assert.equal(anon.status, 403);
  assert.equal(
    anon.text,
    `Permission denied: anonymous token lacks permission 'service:write' on "web". The anonymous token is used implicitly when a request does not specify a token.`,
  );
  const tok = (await call(agent.url, "/v1/acl/token", { method: "PUT", token: agent.managementToken, body: { ServiceIdentities: [{ ServiceName: "web" }] } })).json;
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web", { token: tok.SecretID })).status, 200);
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/leaf/web-sidecar-proxy", { token: tok.SecretID })).status, 200);
  const db = await call(agent.url, "/v1/agent/connect/ca/leaf/db", { token: tok.SecretID });
  assert.equal(db.status, 403);
  assert.equal(db.text, `Permission denied: token with AccessorID '${tok.AccessorID}' lacks permission 'service:write' on "db"`);
  // roots need no ACL
  assert.equal((await call(agent.url, "/v1/agent/connect/ca/roots")).status, 200);
});

/** Waits (on the feed, no polling of the network) until `n` readers are blocked. */
async function waitForBlocked(agent: { ctx: { feed: { blockedCount(): number } } }, n: number): Promise<void> {
  while (agent.ctx.feed.blockedCount() < n) await new Promise((r) => setImmediate(r));
}
