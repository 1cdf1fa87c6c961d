// Every agent response decoder: arbitrary JSON and one-field mutations of valid bodies either parse
// or throw AgentError("bad_body") whose message names a field and never carries a value; valid
// shapes parse to the camelCase values they hold.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  AgentError,
  parseAgentService,
  parseAgentServices,
  parseAuthorizeResult,
  parseCaRoots,
  parseHealthEntries,
  parseIntentionMatch,
  parseLeafCert,
  parsePreparedQueryNodes,
} from "../../src/agent/index.js";
import { PROTOTYPE_NAMES, RUNS, expectOnly, jsonBody, mutated } from "./arbitraries.js";

// A value that must never show up in an error message (a leaf body holds a private key).
const SECRET = "S3CRET-VALUE-7f1c";
const PEM_CERT = `-----BEGIN CERTIFICATE-----\nMIIB${SECRET}\n-----END CERTIFICATE-----\n`;
const PEM_KEY = `-----BEGIN EC PRIVATE KEY-----\nMHc${SECRET}\n-----END EC PRIVATE KEY-----\n`;

const decoders: Array<[string, (body: unknown) => unknown]> = [
  ["parseCaRoots", parseCaRoots],
  ["parseLeafCert", parseLeafCert],
  ["parseAgentService", (b) => parseAgentService(b)],
  ["parseAgentServices", parseAgentServices],
  ["parseHealthEntries", (b) => parseHealthEntries(b)],
  ["parsePreparedQueryNodes", parsePreparedQueryNodes],
  ["parseIntentionMatch", (b) => parseIntentionMatch(b, "api")],
  ["parseAuthorizeResult", parseAuthorizeResult],
];

/** A fast-check reporter that names the decoder in the failure. */
function labelled<Ts>(label: string) {
  return (out: fc.RunDetails<Ts>): void => {
    if (out.failed) throw new Error(`${label}: ${fc.defaultReportMessage(out) ?? "failed"}`);
  };
}

function onlyBadBody(err: AgentError): void {
  assert.equal(err.code, "bad_body", err.message);
  assert.equal(err.status, undefined);
  assert.match(err.message, /^[A-Za-z]/, "the message starts with the field it names");
  assert.ok(!err.message.includes(SECRET), `a value leaked into the message: ${err.message}`);
}

// ---- valid shapes ----
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const text = fc.oneof(name, fc.string({ maxLength: 12 }).map((s) => s + SECRET));
const uint = fc.nat({ max: 2 ** 40 });
const port = fc.nat({ max: 65535 });
const isoDate = fc
  .date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true })
  .map((d) => d.toISOString());
const hex = fc.stringMatching(/^[0-9a-f]{2}(:[0-9a-f]{2}){3}$/);
const nullable = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });

const root = fc.record({
  ID: hex,
  Name: nullable(text),
  SerialNumber: nullable(uint),
  SigningKeyID: nullable(hex),
  NotBefore: isoDate,
  NotAfter: isoDate,
  RootCert: fc.constant(PEM_CERT),
  IntermediateCerts: nullable(fc.array(fc.constant(PEM_CERT), { maxLength: 2 })),
  Active: nullable(fc.boolean()),
});
const roots = fc.record({ ActiveRootID: nullable(hex), TrustDomain: nullable(name), Roots: nullable(fc.array(root, { maxLength: 3 })) });

const leaf = fc.record({
  SerialNumber: hex,
  CertPEM: fc.constant(PEM_CERT),
  PrivateKeyPEM: fc.constant(PEM_KEY),
  Service: name,
  ServiceURI: name.map((s) => `spiffe://x.consul/ns/default/dc/dc1/svc/${s}`),
  ValidAfter: isoDate,
  ValidBefore: isoDate,
  ModifyIndex: nullable(uint),
});

const upstream = fc.record(
  {
    DestinationType: fc.constantFrom("service", "prepared_query", "", null),
    DestinationName: name,
    DestinationNamespace: nullable(name),
    Datacenter: nullable(name),
    LocalBindAddress: nullable(fc.constantFrom("127.0.0.1", "::1")),
    LocalBindPort: port,
    Config: nullable(fc.dictionary(name, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })),
  },
  { requiredKeys: ["DestinationName"] },
);
const service = fc.record(
  {
    Kind: fc.constantFrom("", "connect-proxy", null),
    ID: name,
    Service: name,
    Tags: nullable(fc.array(text, { maxLength: 3 })),
    Meta: nullable(fc.dictionary(fc.oneof(name, fc.constantFrom(...PROTOTYPE_NAMES)), text, { maxKeys: 3 })),
    Address: nullable(text),
    Port: port,
    Datacenter: nullable(name),
    Proxy: nullable(
      fc.record(
        {
          DestinationServiceName: name,
          DestinationServiceID: name,
          LocalServiceAddress: nullable(fc.constant("127.0.0.1")),
          LocalServicePort: port,
          Mode: nullable(fc.constant("direct")),
          Config: nullable(fc.dictionary(name, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })),
          Upstreams: nullable(fc.array(upstream, { maxLength: 2 })),
        },
        { requiredKeys: [] },
      ),
    ),
    Connect: nullable(fc.record({ Native: nullable(fc.boolean()) }, { requiredKeys: [] })),
    ContentHash: nullable(hex),
  },
  { requiredKeys: ["ID", "Service"] },
);
const healthEntry = fc.record({
  Node: fc.record({ ID: nullable(name), Node: name, Address: nullable(text), Datacenter: nullable(name) }),
  Service: fc.record({ Kind: nullable(fc.constant("connect-proxy")), ID: name, Service: name, Port: port, Proxy: nullable(fc.record({ DestinationServiceName: name })) }),
  Checks: nullable(fc.array(fc.record({ CheckID: name, Status: fc.constantFrom("passing", "warning", "critical") }), { maxLength: 3 })),
});
const intention = fc.record({
  ID: nullable(name),
  SourceNS: nullable(name),
  SourceName: fc.oneof(name, fc.constant("*")),
  DestinationNS: nullable(name),
  DestinationName: fc.oneof(name, fc.constant("*")),
  Action: fc.constantFrom("allow", "deny", "ALLOW", "Deny", null),
  Permissions: nullable(fc.array(fc.record({ Action: fc.constant("deny") }), { maxLength: 2 })),
  Precedence: nullable(uint),
  ModifyIndex: nullable(uint),
});
const authorizeBody = fc.record({ Authorized: fc.boolean(), Reason: nullable(text) });

test("fuzz: every agent decoder given arbitrary JSON returns or throws AgentError bad_body", () => {
  for (const [label, decode] of decoders) {
    fc.assert(
      fc.property(jsonBody, (body) => {
        expectOnly(() => decode(body), AgentError, onlyBadBody);
      }),
      { numRuns: RUNS, examples: [[null], [[]], [{}], ["x"], [0], [true]], reporter: labelled(label) },
    );
  }
});

test("fuzz: a valid body with one field swapped for arbitrary JSON parses or names the field, never leaks a value", () => {
  const cases: Array<[fc.Arbitrary<unknown>, (b: unknown) => unknown]> = [
    [roots, parseCaRoots],
    [leaf, parseLeafCert],
    [service, (b) => parseAgentService(b)],
    [fc.dictionary(name, service, { maxKeys: 3 }), parseAgentServices],
    [fc.array(healthEntry, { maxLength: 3 }), (b) => parseHealthEntries(b)],
    [fc.record({ Nodes: fc.array(healthEntry, { maxLength: 2 }) }), parsePreparedQueryNodes],
    [fc.record({ api: fc.array(intention, { maxLength: 3 }) }), (b) => parseIntentionMatch(b, "api")],
    [authorizeBody, parseAuthorizeResult],
  ];
  cases.forEach(([valid, decode], i) => {
    fc.assert(
      fc.property(mutated(valid), (body) => {
        expectOnly(() => decode(body), AgentError, onlyBadBody);
      }),
      { numRuns: RUNS, reporter: labelled(decoders[i]![0]) },
    );
  });
});

test("fuzz: valid roots, leaves, services, health, intentions and authorize answers parse to their values", () => {
  fc.assert(
    fc.property(roots, (b) => {
      const r = parseCaRoots(b);
      assert.equal(r.roots.length, b.Roots?.length ?? 0);
      assert.equal(r.trustDomain, (b.TrustDomain ?? "").toLowerCase());
      r.roots.forEach((x, i) => {
        assert.equal(x.notBefore.toISOString(), b.Roots![i]!.NotBefore);
        assert.equal(x.intermediateCertPems.length, b.Roots![i]!.IntermediateCerts?.length ?? 0);
      });
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(leaf, (b) => {
      const l = parseLeafCert(b);
      assert.equal(l.privateKeyPem, PEM_KEY);
      assert.equal(l.serviceUri, b.ServiceURI);
      assert.equal(l.validBefore.toISOString(), b.ValidBefore);
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(service, (b) => {
      const s = parseAgentService(b);
      assert.equal(s.id, b.ID);
      assert.equal(s.port, b.Port ?? 0);
      assert.deepEqual(Object.keys(s.meta).sort(), Object.keys(b.Meta ?? {}).sort(), "every Meta key survives, __proto__ included");
      assert.equal(s.proxy?.upstreams.length ?? 0, b.Proxy?.Upstreams?.length ?? 0);
      for (const u of s.proxy?.upstreams ?? []) {
        assert.ok(u.destinationType === "service" || u.destinationType === "prepared_query");
        assert.equal(u.destinationNamespace === "", false);
      }
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(healthEntry, { maxLength: 4 }), (b) => {
      const h = parseHealthEntries(b);
      assert.deepEqual(h.map((e) => e.service.port), b.map((e) => e.Service.Port));
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(intention, { maxLength: 4 }), (list) => {
      const out = parseIntentionMatch({ api: list }, "api");
      assert.deepEqual(out.map((i) => i.action), list.map((i) => (i.Action ?? "").toLowerCase()));
      assert.deepEqual(out.map((i) => i.permissions.length), list.map((i) => i.Permissions?.length ?? 0));
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(authorizeBody, (b) => {
      assert.deepEqual(parseAuthorizeResult(b), { authorized: b.Authorized, reason: b.Reason ?? "" });
    }),
    { numRuns: RUNS },
  );
});

// Regression (found by this fuzzing): a destination named like an Object.prototype member read the
// inherited member (`{}["toString"]` is a function) and failed with bad_body instead of "no intentions".
test("intention match for a destination named like an Object.prototype member is an empty list when absent", () => {
  for (const dest of PROTOTYPE_NAMES) {
    assert.deepEqual(parseIntentionMatch({}, dest), [], dest);
    assert.deepEqual(parseIntentionMatch(JSON.parse(`{"other":[]}`), dest), [], dest);
  }
  const body = JSON.parse(`{"constructor":[{"SourceName":"web","DestinationName":"constructor","Action":"allow"}]}`) as unknown;
  assert.equal(parseIntentionMatch(body, "constructor")[0]?.sourceName, "web");
});

// Regression (found by this fuzzing): a Meta key "__proto__" (valid in Consul) was dropped on copy.
test("a service Meta key named __proto__ survives parsing as an own key", () => {
  const body = JSON.parse(`{"ID":"web","Service":"web","Meta":{"__proto__":"x","k":"v"}}`) as unknown;
  const meta = parseAgentService(body).meta;
  assert.deepEqual(Object.entries(meta).sort(), [["__proto__", "x"], ["k", "v"]]);
});
