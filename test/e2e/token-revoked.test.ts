// The sidecar's ACL token is deleted while it runs (ACLs on, default deny). What keeps working: live
// connections, decisions already cached, the certificates it holds. What stops: new decisions and the
// watches. What the operator sees: the agent's 403 text in the log, watch_errors_total, /ready.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { parseCaRoots, parseLeafCert } from "../../src/agent/index.js";
import { captureLog } from "../support/log-capture.js";
import { test } from "../support/leaks.js";
import { until } from "../support/wait.js";
import { closed, registerApp, setIntention, startEchoApp, startMesh, startSidecar } from "./mesh.js";

test("a token revoked mid-run: live connections, cached decisions and held certs keep working; new decisions and watches fail, visibly", async (t) => {
  const mesh = await startMesh(t, { aclsEnabled: true });
  const app = await startEchoApp(t);
  const apiPort = await registerApp(mesh, { name: "api", appPort: app.port });
  const created = await mesh.mgmt.request({ method: "PUT", path: "/v1/acl/token", body: { ServiceIdentities: [{ ServiceName: "api" }] } });
  const token = created.body as { SecretID: string; AccessorID: string };
  await setIntention(mesh, "web", "api", "allow");
  await setIntention(mesh, "other", "api", "allow");
  const cap = captureLog();
  const { sidecar, metrics } = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" }, { token: token.SecretID, log: cap.log });
  const roots = parseCaRoots((await mesh.mgmt.request({ method: "GET", path: "/v1/agent/connect/ca/roots" })).body).roots.map((r) => r.rootCertPem);
  const creds = async (service: string) => parseLeafCert((await mesh.mgmt.request({ method: "GET", path: `/v1/agent/connect/ca/leaf/${service}` })).body);
  const web = await creds("web");
  const other = await creds("other");
  const connectAs = async (leaf: { certPem: string; privateKeyPem: string }): Promise<TLSSocket> => {
    const s = tlsConnect({ host: "127.0.0.1", port: apiPort, cert: leaf.certPem, key: leaf.privateKeyPem, ca: roots, checkServerIdentity: () => undefined });
    s.on("error", () => {});
    await once(s, "secureConnect");
    return s;
  };
  const echoed = (s: TLSSocket, text: string): Promise<string> =>
    new Promise((resolve) => {
      s.once("data", (b: Buffer) => resolve(b.toString()));
      s.once("close", () => resolve("closed"));
      s.write(text);
    });

  const live = await connectAs(web);
  assert.equal(await echoed(live, "before"), "before"); // web's decision is now cached
  const leafBefore = sidecar.status().leaf?.serial;
  const errorsBefore = (await metrics.watchErrors.get()).values.reduce((a, v) => a + v.value, 0);

  await mesh.mgmt.request({ method: "DELETE", path: `/v1/acl/token/${token.AccessorID}` });

  // Stops: a source not decided before cannot be decided (the agent refuses the dead token).
  const fresh = await connectAs(other);
  assert.equal(await echoed(fresh, "let me in"), "closed");
  await cap.next((l) => JSON.stringify(l).includes("POST /v1/agent/connect/authorize: 403 token does not exist: ACL not found"));
  // Keeps working: the cached decision for web, the live connection, the certificate held.
  const again = await connectAs(web);
  assert.equal(await echoed(again, "cached"), "cached");
  assert.equal(await echoed(live, "after"), "after");
  assert.equal(sidecar.status().leaf?.serial, leafBefore);
  const closedBy = new Map((await metrics.connectionsClosed.get()).values.map((v) => [v.labels.reason, v.value]));
  assert.deepEqual([...closedBy], [["authz_unavailable", 1]]);

  // Watches stop: an intention change wakes the intentions watch, whose next request carries the dead token.
  await setIntention(mesh, "unrelated", "api", "deny");
  await until(async () => (await metrics.watchErrors.get()).values.reduce((a, v) => a + v.value, 0) > errorsBefore, "a watch error to be counted");
  await cap.next((l) => JSON.stringify(l).includes("GET /v1/connect/intentions/match: 403 token does not exist: ACL not found"));
  assert.equal(await echoed(live, "still"), "still", "the live connection outlives the failed watch");
  // /ready stays 200: the sidecar still serves what it can; the log and watch_errors_total say why not more.
  const ready = await fetch(`${sidecar.adminUrl()}/ready`);
  assert.equal(ready.status, 200, await ready.text());

  for (const s of [live, again]) s.end();
  await Promise.all([closed(live), closed(again), closed(fresh)]);
});
