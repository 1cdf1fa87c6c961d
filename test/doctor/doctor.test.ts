// `doctor` against dev agents set up well and badly: each check's verdict and the exit code.
import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { test } from "node:test";
import { Registry } from "prom-client";
import { resolveAgentConfig } from "../../src/agent/index.js";
import { doctorExitCode, runDoctor } from "../../src/doctor/index.js";
import { createMetrics } from "../../src/ops/index.js";
import { runSidecar } from "../../src/sidecar/index.js";
import { makePki } from "../agent/fixtures.js";
import { check, hostIPv4, silentLog, startScenario, verdicts } from "./fixture.js";

const HOST_IP = hostIPv4();
const NO_HOST_IP = HOST_IP === undefined ? "this machine has only loopback addresses" : false;

test("a well set-up sidecar passes every check it can see, and WARNs on what agent/self would tell", async (t) => {
  const s = await startScenario(t);
  const report = await s.doctor({ sidecarPortRange: s.sidecarRange });
  if (HOST_IP === undefined) t.diagnostic("this machine has only loopback addresses: app-exposure is expected to SKIP, its PASS is not checked here");
  assert.deepEqual(verdicts(report), {
    agent: "PASS",
    identity: "PASS",
    "acl-enabled": "PASS",
    "acl-default-policy": "PASS",
    "acl-anonymous-write": "PASS",
    "intentions-default": "PASS",
    intentions: "PASS",
    "token-management": "PASS",
    "token-scope": "PASS",
    "token-file": "PASS",
    "agent-transport": "PASS",
    // a service-identity token has no agent:read (spec §11.3): these cannot be told
    "agent-http-listeners": "WARN",
    "agent-rpc-tls": "WARN",
    "gossip-encryption": "WARN",
    "ca-roots": "PASS",
    "ca-root-validity": "PASS",
    leaf: "PASS",
    "ca-provider": "WARN",
    "public-port": "PASS",
    "public-port-bind": "PASS",
    "app-address": "PASS",
    "app-exposure": HOST_IP === undefined ? "SKIP" : "PASS",
  });
  assert.equal(report.fatal, undefined);
  assert.equal(report.service, "web");
  assert.equal(report.proxyId, "web-sidecar-proxy");
  assert.equal(doctorExitCode(report), 0);
  assert.match(check(report, "acl-default-policy").seen, /hint/);
  assert.match(check(report, "public-port").seen, new RegExp(`inside ${s.sidecarRange.min}–${s.sidecarRange.max}`));
  assert.match(check(report, "ca-provider").seen, /built-in/);
  for (const c of report.checks) {
    if (c.verdict === "WARN" || c.verdict === "FAIL") assert.ok(c.fix, `${c.id} has a fix`);
    assert.doesNotMatch(c.seen, new RegExp(s.dev.managementToken), "no token in the output");
  }
});

test("with an audit token, agent/self is read: the dev agent's clear-text RPC and gossip FAIL", async (t) => {
  const s = await startScenario(t);
  const report = await s.doctor({ auditToken: s.dev.managementToken });
  const v = verdicts(report);
  assert.equal(v["agent-http-listeners"], "PASS");
  assert.equal(v["agent-rpc-tls"], "FAIL");
  assert.equal(v["gossip-encryption"], "FAIL");
  assert.equal(v["ca-provider"], "WARN");
  assert.equal(v["acl-default-policy"], "PASS");
  assert.match(check(report, "acl-default-policy").seen, /agent\/self/);
  assert.match(check(report, "agent").seen, /Consul 1\.20\.1/);
  assert.equal(doctorExitCode(report), 1);
});

test("ACLs off: ACL checks FAIL, token checks SKIP, exit 1", async (t) => {
  const s = await startScenario(t, { aclsEnabled: false });
  const report = await s.doctor();
  const v = verdicts(report);
  assert.equal(v["acl-enabled"], "FAIL");
  assert.match(check(report, "acl-enabled").seen, /401 ACL support disabled/);
  assert.equal(v["acl-default-policy"], "FAIL");
  assert.equal(v["acl-anonymous-write"], "FAIL");
  assert.equal(v["intentions-default"], "FAIL");
  assert.equal(v["token-management"], "SKIP");
  assert.equal(v["token-scope"], "SKIP");
  assert.equal(v["token-file"], "SKIP");
  // with ACLs off agent/self needs no token: what it says is used
  assert.equal(v["agent-http-listeners"], "PASS");
  assert.equal(doctorExitCode(report), 1);
});

test("ACLs on with default allow: the default policy, the anonymous token and intentions FAIL", async (t) => {
  const s = await startScenario(t, { aclDefaultPolicy: "allow" });
  const report = await s.doctor();
  const v = verdicts(report);
  assert.equal(v["acl-enabled"], "PASS");
  assert.equal(v["acl-default-policy"], "FAIL");
  assert.equal(v["acl-anonymous-write"], "FAIL");
  assert.equal(v["intentions-default"], "FAIL");
  assert.equal(v["token-scope"], "PASS");
  assert.equal(doctorExitCode(report), 1);
});

test("a management token FAILs token-management and token-scope", async (t) => {
  const s = await startScenario(t, { token: "management" });
  const report = await s.doctor();
  const v = verdicts(report);
  assert.equal(v["token-management"], "FAIL");
  assert.match(check(report, "token-management").seen, /global-management/);
  assert.match(check(report, "token-management").fix ?? "", /-service-identity web/);
  assert.equal(v["token-scope"], "FAIL");
  assert.equal(doctorExitCode(report), 1);
});

test("a token with more than its service identity is FAILed with the extra rights named", async (t) => {
  const s = await startScenario(t, {
    token: { Description: "web and db", ServiceIdentities: [{ ServiceName: "web" }, { ServiceName: "db" }] },
  });
  const report = await s.doctor();
  assert.equal(check(report, "token-scope").verdict, "FAIL");
  assert.match(check(report, "token-scope").seen, /service identity db/);
  assert.equal(doctorExitCode(report), 1);
});

test("a policy on the token: WARN when it cannot be read, FAIL naming its extra rule when an audit token reads it", async (t) => {
  const s0 = await startScenario(t, { token: "none" });
  const policy = (await s0.put("/v1/acl/policy", {
    Name: "web-extra",
    Rules: 'service "web" { policy = "write" }\nservice_prefix "" { policy = "read" }\nkey_prefix "" { policy = "write" }',
  })) as { ID: string };
  const token = (await s0.put("/v1/acl/token", { Policies: [{ ID: policy.ID }] })) as { SecretID: string };
  const opts = s0.doctorOptions({ agent: resolveAgentConfig({ httpAddr: s0.dev.address, token: token.SecretID }, {}) });

  const unreadable = await runDoctor(opts, { log: silentLog, now: Date.now });
  assert.equal(check(unreadable, "token-scope").verdict, "WARN");
  assert.match(check(unreadable, "token-scope").seen, /policy web-extra \(reading it needs acl:read\)/);
  assert.equal(check(unreadable, "token-file").verdict, "WARN", "a token given inline");

  const audited = await runDoctor({ ...opts, auditToken: s0.dev.managementToken }, { log: silentLog, now: Date.now });
  assert.equal(check(audited, "token-scope").verdict, "FAIL");
  assert.match(check(audited, "token-scope").seen, /policy web-extra: key_prefix "" \{ policy = "write" \}/);
  assert.doesNotMatch(check(audited, "token-scope").seen, /service_prefix/, "reads inside the identity are not extra");
});

test("a token file with mode 0644 FAILs token-file; 0640 WARNs", async (t) => {
  const s = await startScenario(t, { tokenFileMode: 0o644 });
  const report = await s.doctor();
  const c = check(report, "token-file");
  assert.equal(c.verdict, "FAIL");
  assert.match(c.seen, /mode 0644/);
  assert.equal(c.fix, `chmod 600 ${s.tokenFile}`);
  assert.equal(doctorExitCode(report), 1);

  chmodSync(s.tokenFile!, 0o640);
  assert.equal(check(await s.doctor(), "token-file").verdict, "WARN");
});

test("an app listening on 0.0.0.0 answers on this host's own address: app-exposure FAILs", { skip: NO_HOST_IP }, async (t) => {
  const s = await startScenario(t, { appHost: "0.0.0.0" });
  const report = await s.doctor();
  const c = check(report, "app-exposure");
  assert.equal(c.verdict, "FAIL");
  assert.ok(c.seen.includes(`${HOST_IP}:${s.appPort}`), c.seen);
  assert.match(c.fix ?? "", /127\.0\.0\.1/);
  assert.equal(check(report, "app-address").verdict, "PASS", "the registration itself points at loopback");
  assert.equal(doctorExitCode(report), 1);
});

test("a local service address off loopback FAILs app-address", { skip: NO_HOST_IP }, async (t) => {
  const s = await startScenario(t);
  await s.put("/v1/agent/service/register", {
    Name: "web",
    ID: "web",
    Port: s.appPort,
    Connect: { SidecarService: { Proxy: { LocalServiceAddress: HOST_IP } } },
  });
  const report = await s.doctor();
  assert.equal(check(report, "app-address").verdict, "FAIL");
  assert.match(check(report, "app-address").seen, /not loopback/);
  assert.equal(doctorExitCode(report), 1);
});

test("the agent over plain HTTP on a non-loopback address FAILs agent-transport", { skip: NO_HOST_IP }, async (t) => {
  const s = await startScenario(t, { httpAddr: `${HOST_IP}:0` });
  const report = await s.doctor({ auditToken: s.dev.managementToken });
  const c = check(report, "agent-transport");
  assert.equal(c.verdict, "FAIL");
  assert.match(c.seen, /clear text/);
  assert.equal(check(report, "agent-http-listeners").verdict, "FAIL", "the agent serves plain HTTP off loopback");
  assert.equal(doctorExitCode(report), 1);
});

test("a wildcard allow intention WARNs and hides the default", async (t) => {
  const s = await startScenario(t);
  await s.put("/v1/connect/intentions/exact", { Action: "allow" }, { source: "*", destination: "web" });
  await s.put("/v1/connect/intentions/exact", { Action: "deny" }, { source: "db", destination: "web" });
  await s.put("/v1/connect/intentions/exact", { Action: "allow" }, { source: "api", destination: "web" });
  const report = await s.doctor();
  const c = check(report, "intentions");
  assert.equal(c.verdict, "WARN");
  assert.match(c.seen, /allow api, \*; deny db/);
  assert.equal(check(report, "intentions-default").verdict, "WARN");
  assert.equal(doctorExitCode(report), 0);
});

test("the public port held by this service's running sidecar PASSes; held by another TLS server FAILs", async (t) => {
  const s = await startScenario(t);
  const sidecar = await runSidecar(
    {
      source: { t: "sidecar-for", serviceId: "web" },
      agent: resolveAgentConfig({ httpAddr: s.dev.address, tokenFile: s.tokenFile! }, {}),
      metricsAddr: { host: "127.0.0.1", port: 0 },
      metricsAddrExplicit: true,
      drainTimeoutMs: 0,
      allowNonLoopbackApp: false,
      logConnections: false,
      revokeLive: true,
      authzMaxStaleMs: 60_000,
      maxConns: undefined,
      idleTimeoutMs: undefined,
    },
    { log: silentLog, metrics: createMetrics(new Registry(), { processMetrics: false }), now: Date.now },
  );
  t.after(() => sidecar.close(0));
  await sidecar.ready;
  const port = sidecar.publicAddress()!.port;

  const report = await s.doctor();
  const c = check(report, "public-port-bind");
  assert.equal(c.verdict, "PASS");
  assert.match(c.seen, /held by web's sidecar: it presents spiffe:\/\/.*\/svc\/web/);
  await sidecar.close(0);

  // another service's certificate on the same port
  const db = (await s.admin.request({ method: "GET", path: "/v1/agent/connect/ca/leaf/db" })).body as { CertPEM: string; PrivateKeyPEM: string };
  const impostor = createTlsServer({ cert: db.CertPEM, key: db.PrivateKeyPEM }, (sock) => sock.on("error", () => undefined).destroy());
  await new Promise<void>((resolve) => impostor.listen({ host: "0.0.0.0", port }, resolve));
  t.after(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
  const taken = check(await s.doctor(), "public-port-bind");
  assert.equal(taken.verdict, "FAIL");
  assert.match(taken.seen, /svc\/db/);
});

test("a plain TCP listener on the public port FAILs public-port-bind", async (t) => {
  const s = await startScenario(t);
  const listed = (await s.admin.request({ method: "GET", path: "/v1/agent/service/web-sidecar-proxy" })).body as { Port: number };
  const squatter = createServer((sock) => sock.on("error", () => undefined).destroy());
  await new Promise<void>((resolve) => squatter.listen({ host: "0.0.0.0", port: listed.Port }, resolve));
  t.after(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const c = check(await s.doctor(), "public-port-bind");
  assert.equal(c.verdict, "FAIL");
  assert.match(c.fix ?? "", new RegExp(`ss -ltnp 'sport = :${listed.Port}'`));
});

test("an unreachable agent exits 2 and still judges the local checks", async (t) => {
  const s = await startScenario(t);
  const opts = s.doctorOptions();
  await s.dev.stop();
  const report = await runDoctor(opts, { log: silentLog, now: Date.now });
  assert.equal(report.fatal?.reason, "agent_unreachable");
  assert.equal(check(report, "agent").verdict, "FAIL");
  assert.equal(check(report, "agent-transport").verdict, "PASS");
  assert.equal(check(report, "token-file").verdict, "PASS");
  assert.equal(doctorExitCode(report), 2);
});

test("an identity that cannot be resolved exits 2; the agent-wide checks still run", async (t) => {
  const s = await startScenario(t);
  const report = await s.doctor({ source: { t: "sidecar-for", serviceId: "nope" } });
  assert.equal(report.fatal?.reason, "identity_unresolved");
  assert.match(report.fatal?.message ?? "", /No sidecar proxy registered for nope/);
  const v = verdicts(report);
  assert.equal(v.identity, "FAIL");
  assert.equal(v["acl-enabled"], "PASS");
  assert.equal(v["ca-roots"], "PASS");
  assert.equal(v.leaf, "SKIP");
  assert.equal(doctorExitCode(report), 2);
});

test("a registration `proxy` would refuse FAILs identity naming its field: the doctor reads it with the sidecar's reader", async (t) => {
  const s = await startScenario(t);
  await s.put("/v1/agent/service/register", {
    Kind: "connect-proxy",
    ID: "web-odd-proxy",
    Name: "web-odd-proxy",
    Port: s.sidecarRange.min,
    Proxy: { DestinationServiceName: "web", LocalServicePort: s.appPort, Config: { bind_port: "soon" } },
  });
  const report = await s.doctor({ source: { t: "proxy-id", proxyId: "web-odd-proxy" } });
  assert.equal(check(report, "identity").verdict, "FAIL");
  assert.equal(report.fatal?.reason, "identity_unresolved");
  assert.match(report.fatal?.message ?? "", /registration "web-odd-proxy" cannot run as a sidecar: Proxy\.Config\.bind_port: "soon" is not a whole number/);
  assert.equal(doctorExitCode(report), 2);
});

test("-proxy-id and static -service resolve the same identity", async (t) => {
  const s = await startScenario(t);
  const byId = await s.doctor({ source: { t: "proxy-id", proxyId: "web-sidecar-proxy" } });
  assert.equal(check(byId, "identity").verdict, "PASS");
  assert.equal(byId.service, "web");
  assert.equal(doctorExitCode(byId), 0);

  const statics = await s.doctor({
    source: { t: "static", service: "web", listen: undefined, app: { host: "127.0.0.1", port: s.appPort } },
  });
  assert.equal(check(statics, "identity").verdict, "PASS");
  assert.equal(check(statics, "public-port").verdict, "SKIP");
  assert.equal(check(statics, "leaf").verdict, "PASS");
  assert.equal(check(statics, "app-address").verdict, "PASS");
});

test("the agent over HTTPS with its CA verified, or over a unix socket, PASSes agent-transport", async (t) => {
  const pki = await makePki(t);
  const certFile = join(pki.files.dir, "agent.pem");
  const keyFile = join(pki.files.dir, "agent-key.pem");
  writeFileSync(certFile, pki.serverCertPem);
  writeFileSync(keyFile, pki.serverKeyPem, { mode: 0o600 });
  const s = await startScenario(t, { https: { addr: "127.0.0.1:0", certFile, keyFile } });
  const httpsOpts = s.doctorOptions({
    agent: resolveAgentConfig({ httpAddr: s.dev.httpsUrl!, tokenFile: s.tokenFile!, caFile: pki.files.ca }, {}),
  });
  const viaHttps = await runDoctor(httpsOpts, { log: silentLog, now: Date.now });
  assert.equal(check(viaHttps, "agent-transport").verdict, "PASS");
  assert.match(check(viaHttps, "agent-transport").seen, /^HTTPS to 127\.0\.0\.1:\d+, the agent's certificate verified/);
  assert.equal(check(viaHttps, "leaf").verdict, "PASS");
  assert.equal(doctorExitCode(viaHttps), 0);

  const unverified = await runDoctor(
    { ...httpsOpts, agent: resolveAgentConfig({ httpAddr: s.dev.httpsUrl!, tokenFile: s.tokenFile! }, { CONSUL_HTTP_SSL_VERIFY: "false" }) },
    { log: silentLog, now: Date.now },
  );
  assert.equal(check(unverified, "agent-transport").verdict, "WARN");

  const sock = join(pki.files.dir, "agent.sock");
  const overUnix = await startScenario(t, { httpAddr: `unix://${sock}` });
  const viaUnix = await overUnix.doctor();
  assert.equal(check(viaUnix, "agent-transport").verdict, "PASS");
  assert.match(check(viaUnix, "agent-transport").seen, /unix socket/);
  assert.equal(doctorExitCode(viaUnix), 0);
});
