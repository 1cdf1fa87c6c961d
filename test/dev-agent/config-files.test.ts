// Service definitions from -config-file / -config-dir, as Consul's agent loads them: HCL and JSON,
// service / services / checks, Consul's errors for unknown and mistyped keys, a bad file stopping the
// agent, and SIGHUP reloading the files.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { startDevAgent } from "../../src/dev-agent/index.js";
import { ConfigError } from "../../src/net/index.js";
import { startCli } from "../e2e/child.js";

const EXAMPLES = fileURLToPath(new URL("../../../examples/consul.d", import.meta.url));

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "consul-d-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function get(base: string, path: string): Promise<Json> {
  const res = await fetch(`${base}${path}`);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return (await res.json()) as Json;
}

test("dev-agent -config-dir examples/consul.d registers web and api with their sidecars, upstream and checks", async (t) => {
  const agent = startCli(["dev-agent", "-http-addr", "127.0.0.1:0", "-config-dir", EXAMPLES, "-log-json"]);
  t.after(() => void agent.proc.kill("SIGKILL"));
  const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await agent.waitFor(/dev agent listening on/))![1]!;
  const loaded = JSON.parse(await agent.waitFor(/loaded service definitions/)) as Json;
  assert.deepEqual(loaded.files, [join(EXAMPLES, "api.json"), join(EXAMPLES, "web.hcl")]);

  const services = await get(base, "/v1/agent/services");
  assert.deepEqual(Object.keys(services).sort(), ["api", "api-sidecar-proxy", "web", "web-sidecar-proxy"]);
  // spec §6.2: sidecar ports from the range in registration order, the app's port as the local service port
  assert.equal(services["api-sidecar-proxy"].Port, 21000);
  assert.equal(services["web-sidecar-proxy"].Port, 21001);
  assert.equal(services["web-sidecar-proxy"].Proxy.LocalServicePort, 8080);
  assert.deepEqual(
    services["web-sidecar-proxy"].Proxy.Upstreams.map((u: Json) => [u.DestinationType, u.DestinationName, u.LocalBindPort]),
    [["service", "api", 9191]],
  );
  const checks = await get(base, "/v1/agent/checks");
  assert.equal(checks["web-http"].Type, "http");
  assert.equal(checks["web-http"].ServiceID, "web");
  assert.equal(checks["service:web-sidecar-proxy:1"].Type, "tcp");
  assert.equal(checks["service:web-sidecar-proxy:2"].Type, "alias");
  agent.proc.kill("SIGINT");
  assert.equal(await agent.exited, 0);
});

test("HCL services = [ … ] and JSON checks with service_id load like the service block", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "a.hcl"), `
services = [
  {
    name = "db"
    port = 5432
    tags = ["primary"]
    checks = [
      { name = "db ttl", ttl = "30s" },
      { id = "db-tcp", tcp = "127.0.0.1:5432", interval = "5s" },
    ]
    connect = { sidecar_service = { port = 21900 } }
  },
  { name = "cache", port = 6379, meta = { tier = "hot" } },
]
`);
  writeFileSync(join(dir, "b.json"), JSON.stringify({
    checks: [{ id: "db-extra", name: "db extra", service_id: "db", ttl: "10s" }],
    service: { Name: "native", port: 7000, connect: { native: true } },
  }));
  writeFileSync(join(dir, "notes.txt"), "not a definition");
  const agent = await startDevAgent({ configSources: [{ flag: "config-dir", path: dir }] });
  t.after(() => agent.stop());
  const base = agent.httpUrl;
  const services = await get(base, "/v1/agent/services");
  assert.deepEqual(Object.keys(services).sort(), ["cache", "db", "db-sidecar-proxy", "native"]);
  assert.deepEqual(services.db.Tags, ["primary"]);
  assert.deepEqual(services.cache.Meta, { tier: "hot" });
  assert.equal(services["db-sidecar-proxy"].Port, 21900);
  assert.deepEqual(services.native.Connect, { Native: true });
  const checks = await get(base, "/v1/agent/checks");
  // spec §6.3: several checks without an ID get service:<id>:<n>
  assert.equal(checks["service:db:1"].Type, "ttl");
  assert.equal(checks["db-tcp"].Type, "tcp");
  assert.equal(checks["db-extra"].ServiceID, "db");
  assert.deepEqual(agent.loadedConfig().files.map((f) => f.path), [join(dir, "a.hcl"), join(dir, "b.json")]);
});

async function loadError(t: TestContext, name: string, text: string): Promise<ConfigError> {
  const dir = tempDir(t);
  writeFileSync(join(dir, name), text);
  const err = await startDevAgent({ configSources: [{ flag: "config-dir", path: dir }] }).then(
    async (a) => {
      await a.stop();
      assert.fail(`${name} was accepted`);
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, String(err));
  assert.equal(err.field, "config-dir");
  assert.ok(err.message.includes(join(dir, name)), `names the file: ${err.message}`);
  return err;
}

test("bad files are refused with Consul's errors, naming the file", async (t) => {
  assert.match((await loadError(t, "web.hcl", 'service {\n  name = \n}\n')).message, /failed to parse .*web\.hcl: .*web\.hcl:2,/);
  assert.match((await loadError(t, "web.json", '{"service": {"name": "web",}}')).message, /failed to parse .*web\.json: .*JSON/);
  assert.match(
    (await loadError(t, "web.hcl", 'service {\n  name = "web"\n  portt = 80\n  connect {\n    sidecar_servic {}\n  }\n}\n')).message,
    /failed to parse .*: 2 errors occurred:\n\t\* invalid config key service\.connect\.sidecar_servic\n\t\* invalid config key service\.portt$/,
  );
  assert.match(
    (await loadError(t, "web.json", '{"services": [{"name": "web", "port": "80"}]}')).message,
    /1 error\(s\) decoding:\n\n\* 'services\[0\]\.port' expected type 'int', got unconvertible type 'string', value: '"80"'/,
  );
  assert.match(
    (await loadError(t, "web.hcl", 'service {\n  name = "web"\n  connect {\n    sidecar_service {\n      proxy {\n        upstreams = [{ destination_name = "api" }]\n      }\n    }\n  }\n}\n')).message,
    /web\.hcl: service "web": Invalid SidecarService: .*upstream local bind port or local socket path must be defined and nonzero/s,
  );
  assert.match((await loadError(t, "web.hcl", 'service { port = 80 }\n')).message, /service "": Missing service name/);
  assert.match((await loadError(t, "agent.hcl", 'datacenter = "dc2"\n')).message, /invalid config key datacenter/);
});

test("a malformed file stops the dev agent before it listens: exit 2, the file named, no stack trace", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "web.hcl"), "service {\n  name = \"web\"\n  port = \n}\n");
  const agent = startCli(["dev-agent", "-http-addr", "127.0.0.1:0", "-config-dir", dir]);
  t.after(() => void agent.proc.kill("SIGKILL"));
  assert.equal(await agent.exited, 2);
  const out = agent.lines.join("\n");
  assert.match(out, /config-dir: failed to parse .*web\.hcl/);
  assert.doesNotMatch(out, /listening on/);
  assert.doesNotMatch(out, /\n\s+at /);
  const file = startCli(["dev-agent", "-http-addr", "127.0.0.1:0", "-config-file", join(dir, "web.conf")]);
  assert.equal(await file.exited, 2);
  assert.match(file.lines.join("\n"), /config-file: config: Open failed on .*web\.conf/);
});

test("SIGHUP reloads the files: new, changed and removed services; a bad file keeps the last good load", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "web.hcl"), 'service {\n  name = "web"\n  port = 8080\n  connect {\n    sidecar_service {}\n  }\n}\n');
  writeFileSync(join(dir, "old.json"), '{"service": {"name": "old", "port": 1}}');
  const agent = startCli(["dev-agent", "-http-addr", "127.0.0.1:0", "-config-dir", dir, "-log-json"]);
  t.after(() => void agent.proc.kill("SIGKILL"));
  const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await agent.waitFor(/dev agent listening on/))![1]!;
  await agent.waitFor(/loaded service definitions: old, web/);
  // A service registered over HTTP is not the files' to remove.
  const put = await fetch(`${base}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "http-registered", Port: 2 }) });
  assert.equal(put.status, 200);
  const before = await get(base, "/v1/agent/services");

  writeFileSync(join(dir, "web.hcl"), 'service {\n  name = "web"\n  port = 8081\n  connect {\n    sidecar_service {}\n  }\n}\n');
  unlinkSync(join(dir, "old.json"));
  writeFileSync(join(dir, "api.hcl"), 'service {\n  name = "api"\n  port = 9090\n  connect {\n    sidecar_service {}\n  }\n}\n');
  agent.proc.kill("SIGHUP");
  await agent.waitFor(/reloaded service definitions: api, web/);
  const after = await get(base, "/v1/agent/services");
  assert.deepEqual(Object.keys(after).sort(), ["api", "api-sidecar-proxy", "http-registered", "web", "web-sidecar-proxy"]);
  assert.equal(after.web.Port, 8081);
  assert.equal(after["web-sidecar-proxy"].Port, before["web-sidecar-proxy"].Port, "a sidecar keeps its port (spec §6.2)");
  assert.equal(after["web-sidecar-proxy"].Proxy.LocalServicePort, 8081);

  writeFileSync(join(dir, "api.hcl"), 'service {\n  name = "api"\n  port = "x"\n}\n');
  agent.proc.kill("SIGHUP");
  const failed = JSON.parse(await agent.waitFor(/Failed to reload configs/)) as Json;
  assert.match(String(failed.err), /api\.hcl/);
  assert.deepEqual(Object.keys(await get(base, "/v1/agent/services")).sort(), Object.keys(after).sort(), "the last good load stays");
  agent.proc.kill("SIGINT");
  assert.equal(await agent.exited, 0);
});
