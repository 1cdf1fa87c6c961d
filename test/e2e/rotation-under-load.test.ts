// Continuous traffic with new handshakes through two real sidecars while the leaves renew and then the
// root rotates the Consul way (a new PrivateKey), with clients that must never be admitted trying
// throughout: one whose certificate comes from a foreign CA, one whose source an intention denies.
// Outcomes are counted; nothing is timed.
import assert from "node:assert/strict";
import { connect as tlsConnect } from "node:tls";
import { parseLeafCert } from "../../src/agent/index.js";
import { test } from "../support/leaks.js";
import { until } from "../support/wait.js";
import { makeCa } from "../certs/fixtures.js";
import { rotateRootBody } from "../dev-agent/ca-rotation.js";
import { closed, dial, echo, freePort, registerApp, setIntention, startEchoApp, startMesh, startSidecar, type RunningSidecar } from "./mesh.js";

const LEAF_TTL_MS = 4_000; // renewed at 60-90 % of its life: every sidecar renews its leaf during the run

test("a leaf renewal and a root rotation under continuous new connections: 0 failed, 0 wrongly admitted", async (t) => {
  const mesh = await startMesh(t, { leafCertTtlMs: LEAF_TTL_MS, leafReissueWindowMs: 300 });
  const api = await startEchoApp(t);
  const web = await startEchoApp(t);
  const upstreamPort = await freePort();
  const apiPort = await registerApp(mesh, { name: "api", appPort: api.port });
  await registerApp(mesh, { name: "web", appPort: web.port, upstreams: [{ DestinationName: "api", LocalBindPort: upstreamPort }] });
  await setIntention(mesh, "web", "api", "allow");
  await setIntention(mesh, "evil", "api", "deny");
  const apiSidecar = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  const webSidecar = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  // The unwanted: a foreign CA naming web in our trust domain, and a real leaf of a denied source.
  const foreign = await (await makeCa({ trustDomain: mesh.agent.trustDomain })).issueLeaf({ service: "web" });
  // The denied source holds a current leaf each time (the agent renews it as it does ours).
  const evilLeaf = async (): Promise<{ certPem: string; keyPem: string }> => {
    const leaf = parseLeafCert((await mesh.mgmt.request({ method: "GET", path: "/v1/agent/connect/ca/leaf/evil" })).body);
    return { certPem: leaf.certPem, keyPem: leaf.privateKeyPem };
  };
  const unwanted = [async () => ({ certPem: foreign.certPem, keyPem: foreign.keyPem }), evilLeaf];

  const counts = { ok: 0, failed: 0, refused: 0, admitted: 0 };
  const failures: string[] = [];
  let running = true;
  const legit = async (worker: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const text = `w${worker} #${i}`;
      try {
        const sock = await dial(upstreamPort); // a new connection: a new mTLS handshake upstream
        assert.equal(await echo(sock, text), text);
        sock.end();
        await closed(sock);
        counts.ok++;
      } catch (err) {
        counts.failed++;
        failures.push(`${text}: ${String(err)}`);
      }
    }
  };
  const hostile = async (): Promise<void> => {
    for (let i = 0; running; i++) {
      if (await admitted(apiPort, await unwanted[i % unwanted.length]!())) counts.admitted++;
      else counts.refused++;
    }
  };
  const traffic = Promise.all([legit(1), legit(2), hostile()]);

  const leafOf = (s: RunningSidecar): string => s.sidecar.status().leaf?.serial ?? "";
  const rootsOf = (s: RunningSidecar): number => s.sidecar.status().roots?.fingerprints.length ?? 0;
  const sidecars = [apiSidecar, webSidecar];
  try {
    // 1. Leaf rotation: each sidecar's leaf renews (short TTL).
    const first = sidecars.map(leafOf);
    await until(() => sidecars.every((s, i) => leafOf(s) !== first[i]), "both sidecars to renew their leaf");
    const afterRenewal = counts.ok;
    await until(() => counts.ok >= afterRenewal + 20, "20 connections after the leaf renewal");

    // 2. Root rotation (Consul: a new PrivateKey; the TTL is part of the same Config).
    const beforeRotation = sidecars.map(leafOf);
    await mesh.mgmt.request({ method: "PUT", path: "/v1/connect/ca/configuration", body: rotateRootBody({ LeafCertTTL: `${LEAF_TTL_MS / 1000}s` }) });
    await until(() => sidecars.every((s, i) => rootsOf(s) === 2 && leafOf(s) !== beforeRotation[i]), "both sidecars to trust the new root and hold a reissued leaf");
    const afterRotation = counts.ok;
    await until(() => counts.ok >= afterRotation + 20, "20 connections after the root rotation");
  } finally {
    running = false;
    await traffic;
  }
  assert.deepEqual(failures, [], `${counts.failed} failed of ${counts.ok + counts.failed}`);
  assert.equal(counts.admitted, 0, `${counts.admitted} unwanted clients admitted`);
  assert.ok(counts.refused > 0 && counts.ok > 40, JSON.stringify(counts));
  // Each unwanted client was refused for what it is, on the api sidecar's own count (a denied leaf
  // fetched just before the agent renewed it may expire on the way: cert_expired, still refused).
  const refusedBy = new Map((await apiSidecar.metrics.connectionsRejected.get()).values.map((v) => [v.labels.reason, v.value]));
  const by = (r: string): number => refusedBy.get(r) ?? 0;
  assert.equal(by("bad_chain") + by("denied") + by("cert_expired"), counts.refused, JSON.stringify([...refusedBy]));
  assert.ok((refusedBy.get("bad_chain") ?? 0) > 0 && (refusedBy.get("denied") ?? 0) > 0, JSON.stringify([...refusedBy]));
  t.diagnostic(`counts: ${JSON.stringify(counts)}`);
});

/** One attempt by an unwanted client on the public port: true when a byte of its came back through the app. */
async function admitted(port: number, creds: { certPem: string; keyPem: string }): Promise<boolean> {
  const sock = tlsConnect({ host: "127.0.0.1", port, cert: creds.certPem, key: creds.keyPem, rejectUnauthorized: false });
  sock.on("error", () => {});
  const result = await new Promise<boolean>((resolve) => {
    sock.once("secureConnect", () => sock.write("let me in"));
    sock.once("data", () => resolve(true));
    sock.once("close", () => resolve(false));
  });
  sock.destroy();
  return result;
}
