import assert from "node:assert/strict";
import { test } from "node:test";
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

const PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const PEM2 = "-----BEGIN CERTIFICATE-----\nMIIBinter\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIfake\n-----END EC PRIVATE KEY-----\n";

/** Asserts a bad_body AgentError whose message names `field`. */
function badField(field: string) {
  return (err: unknown) => {
    assert.ok(err instanceof AgentError, String(err));
    assert.equal(err.code, "bad_body");
    assert.ok(err.message.startsWith(field), `"${err.message}" should name ${field}`);
    return true;
  };
}

const rootsBody = () => ({
  ActiveRootID: "C7:BD:55:4B:64:80:14:51:10:A4:B9:B9:D7:E0:75:3F:86:BA:BB:24",
  TrustDomain: "7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c.consul",
  Roots: [
    {
      ID: "c7:bd:55:4b:64:80:14:51:10:a4:b9:b9:d7:e0:75:3f:86:ba:bb:24",
      Name: "Consul CA Primary Cert",
      SerialNumber: 7,
      SigningKeyID: "1f:91:ca:7e",
      ExternalTrustDomain: "7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c",
      NotBefore: "2024-05-21T16:33:28Z",
      NotAfter: "2034-05-19T16:33:28Z",
      RootCert: PEM,
      IntermediateCerts: null,
      Active: true,
      PrivateKeyType: "ec",
      PrivateKeyBits: 256,
      CreateIndex: 8,
      ModifyIndex: 8,
    } as Record<string, unknown>,
  ],
});

const r0id = (roots: { roots: Array<{ id: string }> }) => roots.roots[0]?.id;

test("parses Consul's roots shape, with null IntermediateCerts and a numeric SerialNumber", () => {
  const roots = parseCaRoots(rootsBody());
  assert.equal(roots.trustDomain, "7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c.consul");
  assert.equal(roots.activeRootId, r0id(roots), "ids are lowercased so they compare equal");
  const [r] = roots.roots;
  assert.ok(r);
  assert.equal(r.serialNumber, 7);
  assert.deepEqual(r.intermediateCertPems, []);
  assert.equal(r.active, true);
  assert.equal(r.rootCertPem, PEM);
  assert.equal(r.notAfter.toISOString(), "2034-05-19T16:33:28.000Z");
  assert.deepEqual(parseCaRoots({ ActiveRootID: "", TrustDomain: "", Roots: null }).roots, [], "before bootstrap");
});

test("roots: a wrong type names the field", () => {
  const b = rootsBody();
  b.Roots[0]!.RootCert = 5;
  assert.throws(() => parseCaRoots(b), badField("roots.Roots[0].RootCert: expected string, got number"));
  const c = rootsBody();
  c.Roots[0]!.SerialNumber = "07";
  assert.throws(() => parseCaRoots(c), badField("roots.Roots[0].SerialNumber"));
  const d = rootsBody();
  d.Roots[0]!.NotAfter = "yesterday";
  assert.throws(() => parseCaRoots(d), badField("roots.Roots[0].NotAfter"));
  assert.throws(() => parseCaRoots([]), badField("roots: expected object, got array"));
  assert.throws(() => parseCaRoots({ Roots: {} }), badField("roots.Roots: expected array, got object"));
});

const leafBody = (): Record<string, unknown> => ({
  SerialNumber: "04:00:00:00:00:01:15:4B",
  CertPEM: PEM + PEM2,
  PrivateKeyPEM: KEY,
  Service: "web",
  ServiceURI: "spiffe://7f3a9b2c-1d4e-4f5a-8b6c-9d0e1f2a3b4c.consul/ns/default/dc/dc1/svc/web",
  ValidAfter: "2024-05-21T16:32:28Z",
  ValidBefore: "2024-05-24T16:32:28Z",
  CreateIndex: 5,
  ModifyIndex: 5,
});

test("parses a leaf whose CertPEM holds the leaf and an intermediate", () => {
  const leaf = parseLeafCert(leafBody());
  assert.equal(leaf.certPem, PEM + PEM2);
  assert.equal(leaf.serialNumber, "04:00:00:00:00:01:15:4b");
  assert.equal(leaf.service, "web");
  assert.equal(leaf.modifyIndex, 5);
  assert.equal(leaf.validBefore.getTime() - leaf.validAfter.getTime(), 72 * 3_600_000);
});

test("leaf: errors name the field and never include the private key", () => {
  const b = leafBody();
  b.PrivateKeyPEM = 12;
  assert.throws(() => parseLeafCert(b), badField("leaf.PrivateKeyPEM"));
  const c = leafBody();
  c.PrivateKeyPEM = "MHcCAQEEIsecretkeymaterial";
  assert.throws(
    () => parseLeafCert(c),
    (e: unknown) => e instanceof AgentError && e.message.startsWith("leaf.PrivateKeyPEM") && !e.message.includes("secretkey"),
  );
  const d = leafBody();
  delete d.ValidBefore;
  assert.throws(() => parseLeafCert(d), badField("leaf.ValidBefore: expected string, got undefined"));
  const e = leafBody();
  e.CertPEM = "not pem";
  assert.throws(() => parseLeafCert(e), badField("leaf.CertPEM"));
});

const proxyServiceBody = (): Record<string, unknown> => ({
  Kind: "connect-proxy",
  ID: "web-sidecar-proxy",
  Service: "web-sidecar-proxy",
  Tags: [],
  Meta: {},
  Port: 21000,
  Address: "",
  Weights: { Passing: 1, Warning: 1 },
  EnableTagOverride: false,
  ContentHash: "4ecd29c7bc647ca8",
  Proxy: {
    DestinationServiceName: "web",
    DestinationServiceID: "web",
    LocalServiceAddress: "127.0.0.1",
    LocalServicePort: 8080,
    Config: { local_connect_timeout_ms: 1000 },
    Upstreams: [
      { DestinationType: "service", DestinationName: "db", LocalBindPort: 9191, MeshGateway: {} },
      { DestinationType: "prepared_query", DestinationName: "q", LocalBindSocketPath: "/run/q.sock", Config: { connect_timeout_ms: 5000 } },
    ],
    MeshGateway: {},
    Expose: {},
  },
  Datacenter: "dc1",
});

test("parses an agent service with a proxy block; upstream defaults follow spec 9.2", () => {
  const s = parseAgentService(proxyServiceBody());
  assert.equal(s.kind, "connect-proxy");
  assert.equal(s.port, 21000);
  assert.equal(s.contentHash, "4ecd29c7bc647ca8");
  assert.equal(s.datacenter, "dc1");
  assert.equal(s.connectNative, false);
  assert.ok(s.proxy);
  assert.equal(s.proxy.destinationServiceId, "web");
  assert.equal(s.proxy.localServicePort, 8080);
  assert.equal(s.proxy.mode, "");
  assert.deepEqual(s.proxy.config, { local_connect_timeout_ms: 1000 });
  const [db, q] = s.proxy.upstreams;
  assert.deepEqual(db, {
    destinationType: "service",
    destinationName: "db",
    destinationNamespace: "default",
    datacenter: "",
    localBindAddress: "127.0.0.1",
    localBindPort: 9191,
    localBindSocketPath: "",
    localBindSocketMode: "",
    config: {},
  });
  assert.equal(q?.destinationType, "prepared_query");
  assert.equal(q?.localBindAddress, "", "no default bind address next to a socket path");
  assert.deepEqual(q?.config, { connect_timeout_ms: 5000 });
});

test("agent service: a plain service without Proxy, with null Tags/Meta and Connect.Native", () => {
  const s = parseAgentService({ ID: "web", Service: "web", Tags: null, Meta: null, Port: 8080, Connect: { Native: true } });
  assert.equal(s.kind, "");
  assert.equal(s.proxy, undefined);
  assert.deepEqual(s.tags, []);
  assert.deepEqual(s.meta, {});
  assert.equal(s.connectNative, true);
  assert.equal(s.contentHash, "");
});

test("agent service: wrong types name the nested field", () => {
  const b = proxyServiceBody();
  (b.Proxy as { Upstreams: Array<Record<string, unknown>> }).Upstreams[1]!.LocalBindPort = "9191";
  assert.throws(() => parseAgentService(b), badField("service.Proxy.Upstreams[1].LocalBindPort"));
  const c = proxyServiceBody();
  c.Port = 70000;
  assert.throws(() => parseAgentService(c), badField("service.Port"));
  const d = proxyServiceBody();
  (d.Proxy as Record<string, unknown>).Upstreams = [{ DestinationType: "tcp", DestinationName: "x" }];
  assert.throws(() => parseAgentService(d), badField("service.Proxy.Upstreams[0].DestinationType"));
  const e = proxyServiceBody();
  e.Meta = { owner: 1 };
  assert.throws(() => parseAgentService(e), badField('service.Meta["owner"]'));
});

test("agent services: an object keyed by ID; a bad entry is named by its key", () => {
  const map = parseAgentServices({ "web-sidecar-proxy": proxyServiceBody(), web: { ID: "web", Service: "web", Port: 8080 } });
  assert.deepEqual([...map.keys()], ["web-sidecar-proxy", "web"]);
  assert.equal(map.get("web")?.port, 8080);
  assert.throws(() => parseAgentServices({ web: { ID: 1 } }), badField('services["web"].ID'));
});

const healthBody = () => [
  {
    Node: {
      ID: "40e4a748-2192-161a-0510-9bf59fe950b5",
      Node: "node1",
      Address: "10.0.0.5",
      Datacenter: "dc1",
      TaggedAddresses: { lan: "10.0.0.5" },
      Meta: { "consul-network-segment": "" },
      CreateIndex: 5,
      ModifyIndex: 5,
    },
    Service: {
      Kind: "connect-proxy",
      ID: "web-sidecar-proxy",
      Service: "web-sidecar-proxy",
      Tags: [],
      Address: "",
      Meta: null,
      Port: 21000,
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
      Proxy: { DestinationServiceName: "web", DestinationServiceID: "web", Mode: "", MeshGateway: {}, Expose: {} },
      Connect: {},
      PeerName: "",
      CreateIndex: 12,
      ModifyIndex: 12,
    } as Record<string, unknown>,
    Checks: [
      { Node: "node1", CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing", ServiceTags: [], Definition: {} },
    ] as unknown,
  },
];

test("parses health entries as Consul sends them", () => {
  const [e] = parseHealthEntries(healthBody());
  assert.ok(e);
  assert.deepEqual(e.node, { id: "40e4a748-2192-161a-0510-9bf59fe950b5", name: "node1", address: "10.0.0.5", datacenter: "dc1" });
  assert.equal(e.service.proxyDestinationServiceName, "web");
  assert.equal(e.service.address, "");
  assert.equal(e.service.port, 21000);
  assert.equal(e.service.connectNative, false);
  assert.deepEqual(e.checks, [{ checkId: "serfHealth", status: "passing" }]);
  assert.deepEqual(parseHealthEntries([]), []);
});

test("health: a native service without Kind; Checks null; bad types named", () => {
  const b = healthBody();
  b[0]!.Service = { ID: "db-1", Service: "db", Port: 5432, Connect: { Native: true } };
  b[0]!.Checks = null;
  const [e] = parseHealthEntries(b);
  assert.equal(e?.service.kind, "");
  assert.equal(e?.service.connectNative, true);
  assert.equal(e?.service.proxyDestinationServiceName, "");
  assert.deepEqual(e?.checks, []);
  const c = healthBody();
  c[0]!.Checks = [{ CheckID: "serfHealth", Status: 1 }];
  assert.throws(() => parseHealthEntries(c), badField("health[0].Checks[0].Status"));
  assert.throws(() => parseHealthEntries({}), badField("health: expected array, got object"));
});

test("prepared query: reads Nodes and ignores the leaked QueryMeta", () => {
  const nodes = parsePreparedQueryNodes({ Service: "web", Nodes: healthBody(), DNS: { TTL: "" }, Datacenter: "dc1", Index: 0, KnownLeader: true });
  assert.equal(nodes.length, 1);
  assert.throws(() => parsePreparedQueryNodes({ Nodes: [{ Node: {}, Service: {} }] }), badField("query.Nodes[0].Node.Node"));
});

test("intention match: the list under the exact name, L7 permissions counted", () => {
  const body = {
    db: [
      { SourceNS: "default", SourceName: "web", DestinationNS: "default", DestinationName: "db", SourceType: "consul", Action: "allow", Precedence: 9, CreateIndex: 11, ModifyIndex: 11 },
      { SourceName: "*", DestinationName: "db", SourceType: "consul", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }], Precedence: 8 },
    ],
  };
  const list = parseIntentionMatch(body, "db");
  assert.equal(list.length, 2);
  assert.deepEqual(list[0], {
    id: "",
    sourceNs: "default",
    sourceName: "web",
    destinationNs: "default",
    destinationName: "db",
    action: "allow",
    permissions: [],
    precedence: 9,
    modifyIndex: 11,
  });
  assert.equal(list[1]?.action, "");
  assert.deepEqual(list[1]?.permissions, [{ action: "allow", http: { pathExact: undefined, pathPrefix: "/", pathRegex: undefined, methods: [], headers: [] } }]);
  assert.deepEqual(parseIntentionMatch({}, "db"), [], "a missing key is an empty list");
  assert.throws(() => parseIntentionMatch({ db: [{ SourceName: "web", DestinationName: "db", Action: "maybe" }] }, "db"), badField('match["db"][0].Action'));
});

test("authorize result", () => {
  assert.deepEqual(parseAuthorizeResult({ Authorized: true, Reason: "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)" }), {
    authorized: true,
    reason: "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)",
  });
  assert.throws(() => parseAuthorizeResult({ Authorized: "true" }), badField("authorize.Authorized: expected boolean, got string"));
  assert.throws(() => parseAuthorizeResult(undefined), badField("authorize: expected object, got undefined"));
});
