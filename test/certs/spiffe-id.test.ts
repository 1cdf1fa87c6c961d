import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from "../../src/certs/index.js";

// Copied from ../shared/vectors (certificates published in Consul's docs; see vectors/README.md).
const VECTORS = new URL("../../../test/certs/vectors/", import.meta.url);
const TD = "7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c.consul";

test("the URI SAN of Consul's documented web leaf parses as service web in default/dc1", () => {
  const leaf = new X509Certificate(readFileSync(new URL("consul-1.2-docs-leaf-web.pem", VECTORS)));
  const uri = leaf.subjectAltName!.replace(/^URI:/, "");
  assert.deepEqual(parseSpiffeId(uri), {
    ok: true,
    value: {
      kind: "service", trustDomain: "11111111-2222-3333-4444-555555555555.consul",
      partition: "default", namespace: "default", datacenter: "dc1", service: "web",
    },
  });
  const root = new X509Certificate(readFileSync(new URL("consul-1.2-docs-root.pem", VECTORS)));
  assert.deepEqual(parseSpiffeId(root.subjectAltName!.replace(/^URI:/, "")), {
    ok: true, value: { kind: "signing", trustDomain: "124df5a0-9820-76c3-9aa9-6f62164ba1c2.consul" },
  });
});

test("every URI form of spec 8.1 parses to its identity", () => {
  const cases: Array<[string, SpiffeId]> = [
    [`spiffe://${TD}/ns/default/dc/dc1/svc/web`,
      { kind: "service", trustDomain: TD, partition: "default", namespace: "default", datacenter: "dc1", service: "web" }],
    [`spiffe://${TD}/ap/team1/ns/prod/dc/dc2/svc/db`,
      { kind: "service", trustDomain: TD, partition: "team1", namespace: "prod", datacenter: "dc2", service: "db" }],
    [`spiffe://${TD}/agent/client/dc/dc1/id/node1`,
      { kind: "agent", trustDomain: TD, partition: "default", datacenter: "dc1", node: "node1" }],
    [`spiffe://${TD}/ap/p1/agent/client/dc/dc1/id/node1`,
      { kind: "agent", trustDomain: TD, partition: "p1", datacenter: "dc1", node: "node1" }],
    [`spiffe://${TD}/agent/node1`, { kind: "agent", trustDomain: TD, partition: "default", datacenter: "", node: "node1" }],
    [`spiffe://${TD}/agent/server/dc/dc1`, { kind: "server", trustDomain: TD, datacenter: "dc1" }],
    [`spiffe://${TD}/gateway/mesh/dc/dc1`, { kind: "mesh-gateway", trustDomain: TD, partition: "default", datacenter: "dc1" }],
    [`spiffe://${TD}/ap/p2/gateway/mesh/dc/dc3`, { kind: "mesh-gateway", trustDomain: TD, partition: "p2", datacenter: "dc3" }],
    [`spiffe://${TD}`, { kind: "signing", trustDomain: TD }],
  ];
  for (const [uri, id] of cases) {
    assert.deepEqual(parseSpiffeId(uri), { ok: true, value: id }, uri);
    const again = parseSpiffeId(formatSpiffeId(id));
    assert.deepEqual(again, { ok: true, value: id }, `format of ${uri}`);
  }
  // Only a non-default partition is written (spec §8.1).
  assert.equal(formatSpiffeId(cases[0]![1]), `spiffe://${TD}/ns/default/dc/dc1/svc/web`);
  assert.equal(
    formatSpiffeId({ kind: "service", trustDomain: TD, partition: "default", namespace: "", datacenter: "dc1", service: "web" }),
    `spiffe://${TD}/ns/default/dc/dc1/svc/web`,
    "namespace defaults to default",
  );
});

test("the trust domain is lowercased and escaped segments are unescaped", () => {
  const r = parseSpiffeId("SPIFFE://7F3A9B2C-1D4E-4F5A-8B6C-9D0E1F2A3B4C.Consul/ns/default/dc/dc1/svc/my%20web%2Fapi");
  assert.deepEqual(r, {
    ok: true,
    value: { kind: "service", trustDomain: TD, partition: "default", namespace: "default", datacenter: "dc1", service: "my web/api" },
  });
  assert.equal(formatSpiffeId((r as { ok: true; value: SpiffeId }).value), `spiffe://${TD}/ns/default/dc/dc1/svc/my%20web%2Fapi`);
});

test("anything Consul would not accept is refused with a reason", () => {
  for (const uri of ["", "http://x.consul/ns/default/dc/dc1/svc/web", "spiffe:/x.consul", "urn:spiffe:x", "web"]) {
    assert.deepEqual(parseSpiffeId(uri), { ok: false, reason: "not_spiffe" }, uri);
  }
  for (const uri of [
    "spiffe://", "spiffe://nodot", "spiffe://x.consul/", `spiffe://${TD}/ns/default/dc/dc1/svc/`,
    `spiffe://${TD}/ns/default/dc/dc1/svc/web/`, `spiffe://${TD}/ns/default/dc/dc1/svc/web/extra`,
    `spiffe://${TD}/ns//dc/dc1/svc/web`, `spiffe://${TD}/svc/web`, `spiffe://${TD}/ap/p/agent/server/dc/dc1`,
    `spiffe://${TD}/ns/default/dc/dc1/svc/web?x=1`, `spiffe://${TD}/ns/default/dc/dc1/svc/web#f`,
    `spiffe://user@${TD}/ns/default/dc/dc1/svc/web`, `spiffe://${TD}:8443/ns/default/dc/dc1/svc/web`,
    `spiffe://${TD}/ns/default/dc/dc1/svc/we%zzb`, `spiffe://${TD}/ns/default/dc/dc1/svc/%E0%A4%A`,
    `spiffe://${TD}/agent/client/dc/dc1/id/`, `spiffe://${TD}/gateway/mesh/dc/`,
  ]) {
    assert.deepEqual(parseSpiffeId(uri), { ok: false, reason: "bad_format" }, uri);
  }
});

const segment = fc.string({ minLength: 1, maxLength: 12, unit: "grapheme" });
const trustDomain = fc.stringMatching(/^[a-z0-9-]{1,20}\.consul$/);
const partition = fc.oneof(fc.constant("default"), segment);
const spiffeId: fc.Arbitrary<SpiffeId> = fc.oneof(
  fc.record({ kind: fc.constant("service" as const), trustDomain, partition, namespace: segment, datacenter: segment, service: segment }),
  fc.record({ kind: fc.constant("agent" as const), trustDomain, partition, datacenter: segment, node: segment }),
  fc.record({ kind: fc.constant("agent" as const), trustDomain, partition: fc.constant("default"), datacenter: fc.constant(""), node: segment }),
  fc.record({ kind: fc.constant("server" as const), trustDomain, datacenter: segment }),
  fc.record({ kind: fc.constant("mesh-gateway" as const), trustDomain, partition, datacenter: segment }),
  fc.record({ kind: fc.constant("signing" as const), trustDomain }),
);

test("format then parse gives back the same identity (property)", () => {
  fc.assert(
    fc.property(spiffeId, (id) => {
      assert.deepEqual(parseSpiffeId(formatSpiffeId(id)), { ok: true, value: { ...id } }); // fc.record objects have a null prototype
    }),
    { numRuns: 2000 },
  );
});

test("parseSpiffeId never throws, and what it accepts formats back to an equivalent URI (fuzz)", () => {
  const spiffeish = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.string().map((s) => `spiffe://${s}`),
    fc.array(fc.oneof(fc.constantFrom("ns", "dc", "svc", "ap", "agent", "client", "server", "id", "gateway", "mesh", "%2F", "%", ""), fc.string()), { maxLength: 10 })
      .map((parts) => `spiffe://${TD}/${parts.join("/")}`),
  );
  fc.assert(
    fc.property(spiffeish, (uri) => {
      const r = parseSpiffeId(uri);
      if (r.ok) assert.deepEqual(parseSpiffeId(formatSpiffeId(r.value)), r);
      else assert.ok(r.reason === "not_spiffe" || r.reason === "bad_format");
    }),
    { numRuns: 2500 },
  );
});
