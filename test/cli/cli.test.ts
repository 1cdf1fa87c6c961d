import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { test } from "node:test";
import { parseCommand, type Command } from "../../src/cli/index.js";
import { ConfigError } from "../../src/net/index.js";
import { startCli, UNBUNDLED_CLI_PATH } from "../e2e/child.js";

const run = promisify(execFile);

async function proxy(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const c = await parseCommand(["proxy", ...argv], env);
  assert.equal(c.cmd, "proxy");
  return (c as Extract<Command, { cmd: "proxy" }>).opts;
}

async function configError(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  try {
    await parseCommand(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${argv.join(" ")} was accepted`);
}

test("single-dash long flags parse as in Consul: -sidecar-for web, -http-addr=…", async () => {
  const o = await proxy(["-sidecar-for", "web", "-http-addr=127.0.0.1:9500", "-token", "t0k"]);
  assert.deepEqual(o.source, { t: "sidecar-for", serviceId: "web" });
  assert.deepEqual(o.agent.address, { scheme: "http", host: "127.0.0.1", port: 9500, pathPrefix: "" });
  assert.equal(o.agent.token, "t0k");
  const two = await proxy(["--sidecar-for=api"]);
  assert.deepEqual(two.source, { t: "sidecar-for", serviceId: "api" });
});

test("defaults: admin on loopback port 0, 30 s drain, 1 h idle timeout, 30 s keepalive, connection logs and live revocation on", async () => {
  const o = await proxy(["-sidecar-for", "web"]);
  assert.equal(o.idleTimeoutMs, 3_600_000);
  assert.equal(o.tcpKeepAliveMs, 30_000);
  assert.deepEqual(o.metricsAddr, { host: "127.0.0.1", port: 0 });
  assert.equal(o.metricsAddrExplicit, false);
  assert.equal(o.drainTimeoutMs, 30_000);
  assert.equal(o.authzMaxStaleMs, 600_000);
  assert.equal(o.logConnections, true);
  assert.equal(o.revokeLive, true);
  assert.equal(o.allowNonLoopbackApp, false);
  const off = await proxy(["-sidecar-for", "web", "-log-connections=false", "-revoke-live=false", "-idle-timeout", "0", "-tcp-keepalive", "0", "-max-conns", "100"]);
  assert.equal(off.logConnections, false);
  assert.equal(off.revokeLive, false);
  assert.equal(off.idleTimeoutMs, 0);
  assert.equal(off.tcpKeepAliveMs, 0);
  assert.equal(off.maxConns, 100);
});

test("mode precedence is -proxy-id > -sidecar-for > -service, with CONNECT_* from the environment", async () => {
  assert.deepEqual((await proxy(["-proxy-id", "p1", "-sidecar-for", "web", "-service", "web"])).source, { t: "proxy-id", proxyId: "p1" });
  assert.deepEqual((await proxy(["-service", "web"], { CONNECT_SIDECAR_FOR: "api" })).source, { t: "sidecar-for", serviceId: "api" });
  assert.deepEqual((await proxy(["-sidecar-for", "web"], { CONNECT_PROXY_ID: "p2" })).source, { t: "proxy-id", proxyId: "p2" });
  const s = await proxy(["-service", "web", "-service-addr", "127.0.0.1:8080", "-listen", "127.0.0.1:0", "-upstream", "db:9191", "-upstream", "q.query:127.0.0.2:9292", "-register", "-register-id", "a"]);
  assert.equal(s.source.t, "static");
  if (s.source.t !== "static") return;
  assert.deepEqual(s.source.listen, { host: "127.0.0.1", port: 0 });
  assert.deepEqual(s.source.app, { host: "127.0.0.1", port: 8080 });
  assert.deepEqual(s.source.upstreams.map((u) => [u.destinationType, u.destinationName, u.localBindAddress, u.localBindPort]), [
    ["service", "db", "127.0.0.1", 9191],
    ["prepared_query", "q", "127.0.0.2", 9292],
  ]);
  assert.deepEqual(s.source.register, { idSuffix: "a" });
});

test("flag errors name the field and the fix", async () => {
  const none = await configError(["proxy"]);
  assert.equal(none.field, "service");
  assert.match(none.message, /-service or -proxy-id must be specified so that proxy can configure itself\./);
  assert.equal((await configError(["proxy", "-sidecar-for", "web", "-drain-timeout", "5"])).field, "drain-timeout");
  const subSecond = await configError(["proxy", "-sidecar-for", "web", "-tcp-keepalive", "500ms"]);
  assert.equal(subSecond.field, "tcp-keepalive");
  assert.match(subSecond.message, /whole seconds/);
  assert.equal((await configError(["proxy", "-sidecar-for", "web", "-metrics-addr", "nowhere"])).field, "metrics-addr");
  assert.equal((await configError(["proxy", "-sidecar-for", "web", "-http-addr", "127.0.0.1:x"])).field, "http-addr");
  assert.equal((await configError(["proxy", "-sidecar-for", "web", "-log-level", "loud"])).field, "log-level");
  assert.equal((await configError(["proxy", "-sidecar-for", "web", "-max-conns", "-1"])).field, "max-conns");
  assert.equal((await configError(["proxy", "-service", "web", "-listen", "127.0.0.1:0"])).field, "service-addr");
  assert.equal((await configError(["proxy", "-service", "web", "-register"])).field, "service-addr");
  assert.equal((await configError(["proxy", "-service", "web", "-upstream", "db.cache:9191"])).field, "upstream");
  assert.equal((await configError(["dev-agent", "-acl-default-policy", "maybe"])).field, "acl-default-policy");
  assert.equal((await configError(["dev-agent", "-https-addr", "127.0.0.1:0"])).field, "cert-file");
  assert.equal((await configError(["dev-agent", "-leaf-cert-ttl", "forever"])).field, "leaf-cert-ttl");
});

test("usage errors exit 2 with one readable message and no stack trace", async () => {
  for (const argv of [["proxy", "-bogus"], ["proxy"], ["proxy", "-sidecar-for", "web", "-drain-timeout", "soon"], [], ["fly"]]) {
    const err = await run(process.execPath, [UNBUNDLED_CLI_PATH, ...argv]).then(
      () => assert.fail(`${argv.join(" ")} exited 0`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2, argv.join(" "));
    assert.match(err.stderr, /^connect-sidecar: /);
    assert.doesNotMatch(err.stderr, /\n\s+at /, "no stack trace");
  }
  const bogus = await run(process.execPath, [UNBUNDLED_CLI_PATH, "proxy", "-bogus"]).catch((e: { stderr: string }) => e);
  assert.match((bogus as { stderr: string }).stderr, /unknown flag -bogus/);
});

test("--version, -version, -v and `version` print the package version; no command names every command", async () => {
  for (const word of ["--version", "-version", "-v", "version"]) {
    const { stdout } = await run(process.execPath, [UNBUNDLED_CLI_PATH, word]);
    assert.match(stdout, /^connect-sidecar v\d+\.\d+\.\d+\nNode\.js v/, word);
  }
  const none = await run(process.execPath, [UNBUNDLED_CLI_PATH]).catch((e: { stderr: string }) => e);
  assert.match((none as { stderr: string }).stderr, /proxy, dev-agent, demo or doctor/);
});

test("-help works for every command", async () => {
  for (const cmd of ["proxy", "dev-agent", "demo", "doctor"]) {
    const { stdout } = await run(process.execPath, [UNBUNDLED_CLI_PATH, cmd, "-help"]);
    assert.match(stdout, new RegExp(`connect-sidecar ${cmd} \\[flags\\]`), cmd);
  }
});

test("dev-agent starts, serves the CA roots in the spec's shape to curl, and stops on SIGINT", async (t) => {
  const agent = startCli(["dev-agent", "-http-addr", "127.0.0.1:0", "-log-json"]);
  t.after(() => {
    if (agent.proc.exitCode === null) agent.proc.kill("SIGKILL");
  });
  const line = await agent.waitFor(/dev agent listening on/);
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)![1]!;
  const { stdout } = await run("curl", ["-s", `${url}/v1/agent/connect/ca/roots`]);
  const roots = JSON.parse(stdout) as { ActiveRootID: string; TrustDomain: string; Roots: Array<Record<string, unknown>> };
  assert.match(roots.TrustDomain, /^[0-9a-f-]{36}\.consul$/);
  assert.equal(roots.Roots.length, 1);
  const root = roots.Roots[0]!;
  assert.equal(root.ID, roots.ActiveRootID);
  assert.equal(root.Active, true);
  assert.match(String(root.RootCert), /^-----BEGIN CERTIFICATE-----/);
  agent.proc.kill("SIGINT");
  assert.equal(await agent.exited, 0);
});
