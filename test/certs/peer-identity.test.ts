import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import tls from "node:tls";
import { createPeerIdentifier, type PeerIdentifier, type PeerIdentity, type PeerRejectReason } from "../../src/certs/index.js";
import type { Result } from "../../src/net/index.js";
import { makeCa, type TestCa } from "./fixtures.js";

const DAY_MS = 86_400_000;
type Outcome = Result<PeerIdentity, PeerRejectReason>;

/**
 * A TLS server like the public listener's: it asks for a client certificate, verifies it against
 * the root but lets the handshake finish, and identifies the peer. `connect` resolves with the outcome.
 */
async function startServer(t: TestContext, ca: TestCa, identifier: PeerIdentifier, trustDomain = ca.trustDomain) {
  const own = await ca.issueLeaf({ service: "db" });
  const outcomes: Outcome[] = [];
  const server = tls.createServer(
    { key: own.keyPem, cert: own.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: false },
    (sock) => {
      sock.on("error", () => {});
      outcomes.push(identifier.identify(sock, trustDomain));
      sock.end("checked");
    },
  );
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;

  return async function connect(client: { keyPem?: string; certPem?: string } = {}): Promise<Outcome> {
    const before = outcomes.length;
    const sock = tls.connect({
      port,
      host: "127.0.0.1",
      ca: [ca.certPem],
      checkServerIdentity: () => undefined, // Connect leaves carry no DNS names; identity is the URI
      ...(client.keyPem ? { key: client.keyPem, cert: client.certPem } : {}),
    });
    t.after(() => sock.destroy());
    sock.resume();
    await once(sock, "end");
    sock.end();
    assert.equal(outcomes.length, before + 1, "the server identified exactly one connection");
    return outcomes[before]!;
  };
}

test("a valid leaf identifies its service, serial and URI", async (t) => {
  const ca = await makeCa();
  const connect = await startServer(t, ca, createPeerIdentifier());
  const web = await ca.issueLeaf({ service: "web" });
  const r = await connect(web);
  assert.ok(r.ok, JSON.stringify(r));
  assert.deepEqual(r.value.id, {
    kind: "service", trustDomain: ca.trustDomain, partition: "default", namespace: "default", datacenter: "dc1", service: "web",
  });
  assert.equal(r.value.uri, web.uri);
  assert.equal(r.value.serial, web.serial);
  assert.match(r.value.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test("a leaf issued by an intermediate, presented with its chain, is identified", async (t) => {
  const ca = await makeCa();
  const connect = await startServer(t, ca, createPeerIdentifier());
  const leaf = await (await ca.intermediate()).issueLeaf({ service: "api" });
  const r = await connect(leaf);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.value.id.service, "api");
});

test("each kind of bad client certificate is refused with its reason", async (t) => {
  const ca = await makeCa();
  const other = await makeCa();
  const connect = await startServer(t, ca, createPeerIdentifier());
  const now = Date.now();
  const cases: Array<[string, { keyPem?: string; certPem?: string }, PeerRejectReason]> = [
    ["no certificate", {}, "no_client_cert"],
    ["a leaf from another CA", await other.issueLeaf(), "bad_chain"],
    ["an expired leaf", await ca.issueLeaf({ notBefore: new Date(now - 4 * DAY_MS), notAfter: new Date(now - DAY_MS) }), "cert_expired"],
    ["a leaf valid only tomorrow", await ca.issueLeaf({ notBefore: new Date(now + DAY_MS) }), "cert_expired"],
    ["a leaf without the clientAuth EKU", await ca.issueLeaf({ ekus: ["serverAuth"] }), "bad_chain"],
    ["a leaf of another trust domain (same CA)", await ca.issueLeaf({ trustDomain: "0000aaaa-0000-0000-0000-000000000000.consul" }), "wrong_trust_domain"],
    ["an agent identity", await ca.issueLeaf({ uri: `spiffe://${ca.trustDomain}/agent/client/dc/dc1/id/node1` }), "not_a_service"],
    ["a server identity", await ca.issueLeaf({ uri: `spiffe://${ca.trustDomain}/agent/server/dc/dc1` }), "not_a_service"],
    ["an https URI", await ca.issueLeaf({ uri: "https://web.example.com/" }), "no_spiffe_id"],
    ["a malformed SPIFFE path", await ca.issueLeaf({ uri: `spiffe://${ca.trustDomain}/svc/web` }), "no_spiffe_id"],
    // spec §8.2: exactly one URI SAN; a second one, even a valid service identity, makes it ambiguous
    ["two URI SANs (two service identities)", await ca.issueLeaf({ extraUris: [`spiffe://${ca.trustDomain}/ns/default/dc/dc1/svc/admin`] }), "no_spiffe_id"],
    ["a SPIFFE ID and an https URI", await ca.issueLeaf({ extraUris: ["https://web.example.com/"] }), "no_spiffe_id"],
  ];
  for (const [what, client, reason] of cases) {
    assert.deepEqual(await connect(client), { ok: false, reason }, what);
  }
});

test("a very long service name in the URI SAN is accepted as Consul accepts it (no length limit), without a crash", async (t) => {
  const ca = await makeCa();
  const connect = await startServer(t, ca, createPeerIdentifier());
  const service = `svc-${"x".repeat(8_000)}`; // Consul's ParseCertURI matches /svc/([^/]+) with no bound
  const r = await connect(await ca.issueLeaf({ service }));
  assert.ok(r.ok, JSON.stringify(r).slice(0, 200));
  assert.equal(r.value.id.service, service);
  // and the identifier keeps working for an ordinary peer afterwards
  assert.ok((await connect(await ca.issueLeaf())).ok);
});

test("the trust domain is compared case-insensitively", async (t) => {
  const ca = await makeCa();
  const connect = await startServer(t, ca, createPeerIdentifier(), ca.trustDomain.toUpperCase());
  const r = await connect(await ca.issueLeaf());
  assert.ok(r.ok, JSON.stringify(r));
});

test("a certificate is parsed once: later connections get the cached identity, and the cache is bounded", async (t) => {
  const ca = await makeCa();
  const identifier = createPeerIdentifier({ maxEntries: 2 });
  const connect = await startServer(t, ca, identifier);
  const a = await ca.issueLeaf({ service: "a" });
  const b = await ca.issueLeaf({ service: "b" });
  const c = await ca.issueLeaf({ service: "c" });

  const first = await connect(a);
  const second = await connect(a);
  assert.ok(first.ok && second.ok);
  assert.equal(second.value, first.value, "the same parsed object, not a second parse");
  assert.equal(identifier.size(), 1);

  await connect(b);
  await connect(a); // a is now the most recently used
  await connect(c); // evicts b, not a
  assert.equal(identifier.size(), 2);
  const third = await connect(a);
  assert.ok(third.ok);
  assert.equal(third.value, first.value, "a survived as most recently used");
  const bAgain = await connect(b);
  assert.ok(bAgain.ok);
  assert.equal(bAgain.value.id.service, "b");
  assert.equal(identifier.size(), 2);
});
