import assert from "node:assert/strict";
import { connect as tlsConnect } from "node:tls";
import { once } from "node:events";
import { test } from "node:test";
import {
  closed, dial, echo, freePort, registerApp, scrape, setIntention, startEchoApp, startMesh, startSidecar, sumMetric,
} from "./mesh.js";
import { until } from "../support/wait.js";

test("/ready answers 503 with the reason before the registration and leaf exist, then 200; /status describes the sidecar", async (t) => {
  const mesh = await startMesh(t);
  const api = await startEchoApp(t);
  const { sidecar } = await startSidecar(t, mesh, { t: "proxy-id", proxyId: "api-sidecar-proxy" }, { waitReady: false });

  const live = await fetch(`${sidecar.adminUrl()}/live`);
  assert.equal(live.status, 200);
  const before = await fetch(`${sidecar.adminUrl()}/ready`);
  assert.equal(before.status, 503);
  assert.match(await before.text(), /waiting for the proxy registration from the agent, the leaf certificate and CA roots/);

  await registerApp(mesh, { name: "api", appPort: api.port });
  await sidecar.ready;
  const after = await fetch(`${sidecar.adminUrl()}/ready`);
  assert.equal(after.status, 200);
  assert.equal(await after.text(), "ok\n");

  const status = (await (await fetch(`${sidecar.adminUrl()}/status`)).json()) as Record<string, any>;
  assert.equal(status.ready, true);
  assert.equal(status.mode, "proxy-id");
  assert.equal(status.proxyId, "api-sidecar-proxy");
  assert.equal(status.service, "api");
  assert.equal(status.identity.serviceUri, `spiffe://${mesh.agent.trustDomain}/ns/default/dc/dc1/svc/api`);
  assert.match(status.leaf.serial, /^[0-9a-f]{2}(:[0-9a-f]{2})*$/);
  assert.ok(Date.parse(status.leaf.notAfter) > Date.now());
  assert.equal(status.roots.fingerprints.length, 1);
  assert.equal(status.listeners.public.app, `127.0.0.1:${api.port}`);
  assert.deepEqual(status.upstreams, []);
  assert.equal(status.authz.cacheEntries, 0);

  const notFound = await fetch(`${sidecar.adminUrl()}/nope`);
  assert.equal(notFound.status, 404);
  await notFound.text();
});

test("/metrics reconcile after traffic: accepted = closed + active per listener, with the refusal reasons labelled", async (t) => {
  const mesh = await startMesh(t);
  const apiApp = await startEchoApp(t);
  const secretApp = await startEchoApp(t);
  const webApp = await startEchoApp(t);
  const downPort = await freePort(); // nothing listens here: the app is unreachable
  const ports = { api: await freePort(), secret: await freePort(), down: await freePort(), ghost: await freePort() };
  await registerApp(mesh, { name: "api", appPort: apiApp.port });
  await registerApp(mesh, { name: "secret", appPort: secretApp.port });
  await registerApp(mesh, { name: "down", appPort: downPort });
  await registerApp(mesh, {
    name: "web",
    appPort: webApp.port,
    upstreams: Object.entries(ports).map(([name, port]) => ({ DestinationName: name, LocalBindPort: port, Config: { connect_timeout_ms: 2000 } })),
  });
  await setIntention(mesh, "web", "secret", "deny");
  const api = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  const secret = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "secret" });
  const down = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "down" });
  const web = await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });

  // allowed, and still open at scrape time
  const open = await dial(ports.api);
  assert.equal(await echo(open, "ping"), "ping");
  // allowed and finished
  const done = await dial(ports.api);
  assert.equal(await echo(done, "pong"), "pong");
  done.end();
  await closed(done);
  // refused: denied by intention, app unreachable, upstream without instances
  for (const port of [ports.secret, ports.down, ports.ghost]) {
    const s = await dial(port);
    await assert.rejects(echo(s, "x"), /connection ended/);
    await closed(s);
  }
  // refused: a TLS client without a certificate, straight at api's public listener
  const noCert = tlsConnect({ host: "127.0.0.1", port: api.sidecar.publicAddress()!.port, rejectUnauthorized: false });
  noCert.on("error", () => undefined);
  await once(noCert, "close");

  const reasons = [
    { admin: secret.sidecar.adminUrl(), listener: 'listener="public"', reason: 'reason="denied"' },
    { admin: down.sidecar.adminUrl(), listener: 'listener="public"', reason: 'reason="app_unreachable"' },
    { admin: api.sidecar.adminUrl(), listener: 'listener="public"', reason: 'reason="no_client_cert"' },
    { admin: web.sidecar.adminUrl(), listener: 'listener="upstream:ghost"', reason: 'reason="no_healthy_instances"' },
  ];
  for (const r of reasons) {
    const series = await waitForSeries(r.admin, "connect_sidecar_connections_closed_total", r.listener, r.reason);
    assert.ok(sumMetric(series, "connect_sidecar_connections_rejected_total", r.listener, r.reason) >= 1, `${r.reason} also counted as rejected`);
  }

  for (const admin of [api, secret, down, web].map((s) => s.sidecar.adminUrl())) {
    const series = await scrape(admin);
    const listeners = new Set([...series.keys()].map((k) => /listener="([^"]+)"/.exec(k)?.[1]).filter((l): l is string => l !== undefined));
    assert.ok(listeners.size > 0);
    for (const l of listeners) {
      const m = `listener="${l}"`;
      const accepted = sumMetric(series, "connect_sidecar_connections_accepted_total", m);
      const closedTotal = sumMetric(series, "connect_sidecar_connections_closed_total", m);
      const active = sumMetric(series, "connect_sidecar_connections_active", m);
      assert.equal(accepted, closedTotal + active, `${admin} ${l}: accepted ${accepted} = closed ${closedTotal} + active ${active}`);
    }
  }
  const apiSeries = await scrape(api.sidecar.adminUrl());
  assert.equal(sumMetric(apiSeries, "connect_sidecar_connections_active", 'listener="public"'), 1);
  assert.ok(sumMetric(apiSeries, "connect_sidecar_agent_requests_total") > 0);
  assert.ok(sumMetric(apiSeries, "connect_sidecar_certificate_not_after_timestamp_seconds", 'kind="leaf"') * 1000 > Date.now());
  open.destroy();
});

// The close is counted when the sidecar sees it, which may be just after our client saw it.
async function waitForSeries(admin: string, name: string, ...match: string[]): Promise<Map<string, number>> {
  let series = new Map<string, number>();
  await until(
    async () => sumMetric((series = await scrape(admin)), name, ...match) >= 1,
    `${admin} to count ${name}{${match.join(",")}}`,
    { everyMs: 25 },
  ).catch((err: Error) => assert.fail(`${err.message}; its connection series:\n${[...series].filter(([k]) => k.includes("connections")).join("\n")}`));
  return series;
}
