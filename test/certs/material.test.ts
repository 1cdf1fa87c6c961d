import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import type { CaRoots, LeafCert, SpiffeUri } from "../../src/agent/index.js";
import { checkMaterial } from "../../src/certs/index.js";
import { verifyChain } from "../../src/certs/material.js";
import { makeCa, rootsOf } from "./fixtures.js";

const VECTORS = new URL("../../../test/certs/vectors/", import.meta.url);
const vector = (name: string): string => readFileSync(new URL(name, VECTORS), "utf8");
const DAY_MS = 86_400_000;

test("Consul's documented web leaf chains to its root at 1527000000 s and is refused as expired after 2018-05-24", async () => {
  const leafPem = vector("consul-1.2-docs-leaf-web.pem");
  const rootPem = vector("consul-1.2-docs-root.pem");
  const leafX = new X509Certificate(leafPem);
  const rootX = new X509Certificate(rootPem);
  const path = verifyChain(leafX, [], [rootX]);
  assert.ok(path.ok, "the chain verifies");
  assert.equal(path.value[0], rootX);

  // We hold no key for this leaf: borrow a generated one, so the checks before the key check are what we see.
  const other = await (await makeCa()).issueLeaf();
  const leaf: LeafCert = {
    serialNumber: "08", certPem: leafPem, privateKeyPem: other.keyPem, service: "web",
    serviceUri: "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web" as SpiffeUri,
    validAfter: leafX.validFromDate, validBefore: leafX.validToDate, modifyIndex: 10,
  };
  const root = { id: rootX.fingerprint.toLowerCase(), name: "Consul CA Root Cert", serialNumber: 7, signingKeyId: "",
    notBefore: rootX.validFromDate, notAfter: rootX.validToDate, rootCertPem: rootPem, intermediateCertPems: [], active: true };
  const asDocumented: CaRoots = { activeRootId: root.id, trustDomain: "124df5a0-9820-76c3-9aa9-6f62164ba1c2.consul", roots: [root] };
  const inTime = 1_527_000_000_000;

  assert.deepEqual(checkMaterial(leaf, asDocumented, Date.parse("2018-05-24T16:33:29Z")), { ok: false, reason: "expired" });
  assert.deepEqual(checkMaterial(leaf, asDocumented, Date.parse("2019-01-01T00:00:00Z")), { ok: false, reason: "expired" });
  assert.deepEqual(checkMaterial(leaf, asDocumented, Date.parse("2018-05-21T16:00:00Z")), { ok: false, reason: "not_yet_valid" });
  // The docs edited one trust domain: the leaf's differs from the root's, and that alone refuses the pair.
  assert.deepEqual(checkMaterial(leaf, asDocumented, inTime), { ok: false, reason: "wrong_trust_domain" });
  // With the leaf's own trust domain the chain and SAN pass, and only the borrowed key is refused.
  const leafsDomain = { ...asDocumented, trustDomain: "11111111-2222-3333-4444-555555555555.consul" };
  assert.deepEqual(checkMaterial(leaf, leafsDomain, inTime), { ok: false, reason: "key_mismatch" });
});

test("a good leaf and roots build the TLS material once, with every root as a CA", async () => {
  const ca = await makeCa();
  const old = await makeCa({ trustDomain: ca.trustDomain }); // a root being rotated out
  const { leaf, serial, uri, notAfter } = await ca.issueLeaf({ service: "api" });
  const roots = rootsOf([ca, old]);
  const r = checkMaterial(leaf, roots, Date.now());
  assert.ok(r.ok, JSON.stringify(r));
  const m = r.value;
  assert.equal(m.trustDomain, ca.trustDomain);
  assert.equal(m.serviceUri, uri);
  assert.equal(m.key, leaf.privateKeyPem);
  assert.deepEqual(m.ca, [ca.certPem, old.certPem]);
  assert.equal(m.leafSerial, serial);
  assert.equal(m.leafSerial, leaf.serialNumber);
  assert.equal(m.leafNotAfter.getTime(), notAfter.getTime());
  assert.deepEqual(m.rootFingerprints, roots.roots.map((x) => x.id)); // Consul's root ID form
  assert.equal(new X509Certificate(m.certChain).serialNumber.toLowerCase(), serial.replaceAll(":", ""));
  assert.equal(m.leaf, leaf);
  assert.equal(m.roots, roots);
});

test("a leaf from an intermediate verifies through the intermediates in CertPEM, and not without them", async () => {
  const root = await makeCa();
  const inter = await root.intermediate();
  const { leaf } = await inter.issueLeaf();
  const roots = rootsOf([root]);
  const r = checkMaterial(leaf, roots, Date.now());
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.value.certChain.match(/BEGIN CERTIFICATE/g)?.length, 2, "the whole chain is presented");

  const leafOnly = { ...leaf, certPem: leaf.certPem.slice(0, leaf.certPem.indexOf("-----END CERTIFICATE-----") + 25) };
  assert.deepEqual(checkMaterial(leafOnly, roots, Date.now()), { ok: false, reason: "bad_chain" });

  const expiredInter = await root.intermediate({ notBefore: new Date(Date.now() - 3 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
  const viaExpired = await expiredInter.issueLeaf();
  assert.deepEqual(checkMaterial(viaExpired.leaf, roots, Date.now()), { ok: false, reason: "expired" });
});

test("each broken pair is refused with its own reason", async () => {
  const ca = await makeCa();
  const stranger = await makeCa();
  const now = Date.now();
  const good = await ca.issueLeaf();
  const roots = rootsOf([ca]);

  const cases: Array<[string, LeafCert, CaRoots, string]> = [
    ["no roots", good.leaf, { ...roots, roots: [] }, "no_roots"],
    ["connect not bootstrapped", good.leaf, { ...roots, trustDomain: "" }, "no_trust_domain"],
    ["leaf from another CA", (await stranger.issueLeaf()).leaf, roots, "bad_chain"],
    ["a CA the roots do not list", good.leaf, rootsOf([stranger]), "bad_chain"],
    ["garbage PEM", { ...good.leaf, certPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }, roots, "bad_chain"],
    ["empty CertPEM", { ...good.leaf, certPem: "" }, roots, "bad_chain"],
    ["someone else's key", { ...good.leaf, privateKeyPem: (await ca.issueLeaf()).keyPem }, roots, "key_mismatch"],
    ["the CA's key", { ...good.leaf, privateKeyPem: ca.keyPem }, roots, "key_mismatch"],
    ["unreadable key", { ...good.leaf, privateKeyPem: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n" }, roots, "key_mismatch"],
    ["expired leaf", (await ca.issueLeaf({ notBefore: new Date(now - 4 * DAY_MS), notAfter: new Date(now - DAY_MS) })).leaf, roots, "expired"],
    ["future leaf", (await ca.issueLeaf({ notBefore: new Date(now + DAY_MS) })).leaf, roots, "not_yet_valid"],
    ["leaf for another trust domain", (await ca.issueLeaf({ trustDomain: "other.consul" })).leaf, roots, "wrong_trust_domain"],
    ["agent leaf", (await ca.issueLeaf({ uri: `spiffe://${ca.trustDomain}/agent/client/dc/dc1/id/n1` })).leaf, roots, "wrong_trust_domain"],
  ];
  for (const [what, leaf, r, reason] of cases) {
    assert.deepEqual(checkMaterial(leaf, r, now), { ok: false, reason }, what);
  }
  const expiredRoot = await makeCa({ notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) });
  const underExpired = await expiredRoot.issueLeaf();
  assert.deepEqual(checkMaterial(underExpired.leaf, rootsOf([expiredRoot]), now), { ok: false, reason: "expired" });
});

test("the trust domain is compared case-insensitively and reported lowercase", async () => {
  const ca = await makeCa();
  const { leaf } = await ca.issueLeaf();
  const r = checkMaterial(leaf, rootsOf([ca], { trustDomain: ca.trustDomain.toUpperCase() }), Date.now());
  assert.ok(r.ok);
  assert.equal(r.value.trustDomain, ca.trustDomain);
});
