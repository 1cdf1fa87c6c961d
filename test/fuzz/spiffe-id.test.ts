// parseSpiffeId on hostile text: never throws, only the two documented reasons, and whatever it
// accepts formats back to a URI that parses to the same identity (a canonical round trip).
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from "../../src/certs/index.js";
import { RUNS } from "./arbitraries.js";

const WORDS = ["ns", "dc", "svc", "ap", "agent", "client", "server", "id", "gateway", "mesh", "default", "%2F", "%", "%E0%A4%A", "%ED%A0%80", "", ".", "..", "?", "#"];
// Text shaped like a SPIFFE URI: a scheme in any case, a host, then path segments from the grammar's words.
const spiffeish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ maxLength: 60 }).map((s) => `spiffe://${s}`),
  fc
    .tuple(
      fc.constantFrom("spiffe://", "SPIFFE://", "Spiffe://", "spiffe:/", "spiffe:///", "http://"),
      fc.oneof(fc.stringMatching(/^[A-Za-z0-9._-]{0,12}$/), fc.string({ maxLength: 8 })),
      fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ unit: "binary", maxLength: 6 })), { maxLength: 10 }),
    )
    .map(([scheme, host, segs]) => scheme + host + segs.map((s) => `/${s}`).join("")),
);

test("fuzz: parseSpiffeId never throws and only answers not_spiffe or bad_format", () => {
  fc.assert(
    fc.property(spiffeish, (uri) => {
      const r = parseSpiffeId(uri);
      if (!r.ok) assert.ok(r.reason === "not_spiffe" || r.reason === "bad_format", r.reason);
      else if (!uri.toLowerCase().startsWith("spiffe://")) assert.fail(`accepted a non-spiffe URI ${JSON.stringify(uri)}`);
    }),
    { numRuns: RUNS * 3, examples: [["spiffe://"], ["spiffe://a.consul/ns/%ED%A0%80/dc/d/svc/s"], ["spiffe://x/agent/"], [""]] },
  );
});

test("fuzz: every accepted URI formats to a canonical URI that parses to the same identity", () => {
  fc.assert(
    fc.property(spiffeish, (uri) => {
      const r = parseSpiffeId(uri);
      if (!r.ok) return;
      const canonical = formatSpiffeId(r.value);
      const again = parseSpiffeId(canonical);
      assert.deepEqual(again, r, `${uri} → ${canonical}`);
      assert.equal(formatSpiffeId((again as { value: SpiffeId }).value), canonical, "formatting is idempotent");
      assert.equal(r.value.trustDomain, r.value.trustDomain.toLowerCase());
    }),
    { numRuns: RUNS * 3 },
  );
});

const segment = fc.string({ minLength: 1, maxLength: 12, unit: "grapheme" });
const trustDomain = fc.stringMatching(/^[a-z0-9-]{1,20}\.consul$/);
const partition = fc.oneof(fc.constant("default"), segment);
const spiffeId: fc.Arbitrary<SpiffeId> = fc.oneof(
  fc.record({ kind: fc.constant("service" as const), trustDomain, partition, namespace: segment, datacenter: segment, service: segment }),
  fc.record({ kind: fc.constant("agent" as const), trustDomain, partition, datacenter: segment, node: segment }),
  fc.record({ kind: fc.constant("server" as const), trustDomain, datacenter: segment }),
  fc.record({ kind: fc.constant("mesh-gateway" as const), trustDomain, partition, datacenter: segment }),
  fc.record({ kind: fc.constant("signing" as const), trustDomain }),
);

test("fuzz: formatSpiffeId then parseSpiffeId gives the identity back, for any Unicode segment", () => {
  fc.assert(
    fc.property(spiffeId, (id) => {
      assert.deepEqual(parseSpiffeId(formatSpiffeId(id)), { ok: true, value: { ...id } });
    }),
    { numRuns: RUNS },
  );
});

test("a lone surrogate in a segment neither throws in format nor in parse", () => {
  const uri = formatSpiffeId({ kind: "service", trustDomain: "a.consul", partition: "default", namespace: "default", datacenter: "dc1", service: "\uD800x" });
  const r = parseSpiffeId(uri);
  assert.equal(r.ok, true);
  assert.equal(parseSpiffeId("spiffe://a.consul/ns/default/dc/dc1/svc/%ED%A0%80").ok, false, "an escaped lone surrogate is not UTF-8");
});
