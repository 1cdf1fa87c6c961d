import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { resolveAgentConfig } from "../../src/agent/index.js";
import { ConfigError } from "../../src/net/index.js";
import { tempDir } from "./fixtures.js";

test("defaults to http://127.0.0.1:8500 with no token", () => {
  const cfg = resolveAgentConfig({}, {});
  assert.deepEqual(cfg.address, { scheme: "http", host: "127.0.0.1", port: 8500, pathPrefix: "" });
  assert.equal(cfg.token, "");
  assert.equal(cfg.tokenFile, undefined);
  assert.equal(cfg.tls.verify, true);
});

test("CONSUL_HTTP_ADDR accepts host:port, schemes, path prefixes and IPv6", () => {
  assert.deepEqual(resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "10.0.0.5:8501" }).address, {
    scheme: "http",
    host: "10.0.0.5",
    port: 8501,
    pathPrefix: "",
  });
  assert.deepEqual(resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "https://consul.example:8501/proxy/consul/" }).address, {
    scheme: "https",
    host: "consul.example",
    port: 8501,
    pathPrefix: "/proxy/consul",
  });
  assert.deepEqual(resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "http://[::1]:8500" }).address, {
    scheme: "http",
    host: "::1",
    port: 8500,
    pathPrefix: "",
  });
  assert.deepEqual(resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "unix:///run/consul/http.sock" }).address, {
    scheme: "unix",
    socketPath: "/run/consul/http.sock",
  });
});

test("the -http-addr flag beats CONSUL_HTTP_ADDR", () => {
  const cfg = resolveAgentConfig({ httpAddr: "127.0.0.2:9000" }, { CONSUL_HTTP_ADDR: "127.0.0.3:9001" });
  assert.deepEqual(cfg.address, { scheme: "http", host: "127.0.0.2", port: 9000, pathPrefix: "" });
});

test("CONSUL_HTTP_SSL=true selects https, and an explicit http:// does not downgrade it", () => {
  const plain = resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "127.0.0.1:8501", CONSUL_HTTP_SSL: "true" });
  assert.equal(plain.address.scheme, "https");
  const explicit = resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "http://127.0.0.1:8501", CONSUL_HTTP_SSL: "1" });
  assert.equal(explicit.address.scheme, "https");
  assert.equal(resolveAgentConfig({}, { CONSUL_HTTP_SSL: "false" }).address.scheme, "http");
});

test("an unknown scheme is a ConfigError 'Unknown protocol scheme'", () => {
  assert.throws(
    () => resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "ftp://127.0.0.1:8500" }),
    (err: unknown) =>
      err instanceof ConfigError && err.field === "CONSUL_HTTP_ADDR" && err.message.includes("Unknown protocol scheme: ftp"),
  );
  assert.throws(
    () => resolveAgentConfig({ httpAddr: "tcp://127.0.0.1:8500" }, {}),
    (err: unknown) => err instanceof ConfigError && err.field === "http-addr",
  );
});

test("bad ports and non-boolean SSL values are ConfigErrors", () => {
  assert.throws(() => resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "127.0.0.1:99999" }), ConfigError);
  assert.throws(() => resolveAgentConfig({}, { CONSUL_HTTP_ADDR: "127.0.0.1:port" }), ConfigError);
  assert.throws(() => resolveAgentConfig({}, { CONSUL_HTTP_SSL: "yes" }), (e: unknown) => e instanceof ConfigError && e.field === "CONSUL_HTTP_SSL");
});

test("CONSUL_HTTP_SSL_VERIFY=false turns verification off", () => {
  assert.equal(resolveAgentConfig({}, { CONSUL_HTTP_SSL_VERIFY: "false" }).tls.verify, false);
  assert.equal(resolveAgentConfig({}, { CONSUL_HTTP_SSL_VERIFY: "true" }).tls.verify, true);
});

test("TLS files come from flags over env; the server name loses its port", () => {
  const cfg = resolveAgentConfig(
    { caFile: "/flag/ca.pem" },
    {
      CONSUL_CACERT: "/env/ca.pem",
      CONSUL_CAPATH: "/env/cas",
      CONSUL_CLIENT_CERT: "/env/cert.pem",
      CONSUL_CLIENT_KEY: "/env/key.pem",
      CONSUL_TLS_SERVER_NAME: "consul.example:8501",
    },
  );
  assert.deepEqual(cfg.tls, {
    verify: true,
    caFile: "/flag/ca.pem",
    caPath: "/env/cas",
    certFile: "/env/cert.pem",
    keyFile: "/env/key.pem",
    serverName: "consul.example",
  });
});

test("a client cert without a key (or the reverse) is a ConfigError", () => {
  assert.throws(() => resolveAgentConfig({}, { CONSUL_CLIENT_CERT: "/c.pem" }), (e: unknown) => e instanceof ConfigError && e.field === "CONSUL_CLIENT_CERT");
  assert.throws(() => resolveAgentConfig({ clientKey: "/k.pem" }, {}), (e: unknown) => e instanceof ConfigError && e.field === "client-key");
});

test("token precedence: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN", async (t) => {
  const dir = await tempDir(t);
  const flagFile = join(dir, "flag-token");
  const envFile = join(dir, "env-token");
  await writeFile(flagFile, "  from-flag-file\n");
  await writeFile(envFile, "\tfrom-env-file \n");
  const env = { CONSUL_HTTP_TOKEN_FILE: envFile, CONSUL_HTTP_TOKEN: "from-env" };

  const a = resolveAgentConfig({ tokenFile: flagFile, token: "from-flag" }, env);
  assert.equal(a.token, "from-flag-file");
  assert.equal(a.tokenFile, flagFile);

  const b = resolveAgentConfig({ token: "from-flag" }, env);
  assert.equal(b.token, "from-flag");
  assert.equal(b.tokenFile, undefined);

  const c = resolveAgentConfig({}, env);
  assert.equal(c.token, "from-env-file");
  assert.equal(c.tokenFile, envFile);

  const d = resolveAgentConfig({}, { CONSUL_HTTP_TOKEN: "from-env" });
  assert.equal(d.token, "from-env");
});

test("an unreadable token file is a ConfigError that does not echo any token", async (t) => {
  const dir = await tempDir(t);
  assert.throws(
    () => resolveAgentConfig({}, { CONSUL_HTTP_TOKEN_FILE: join(dir, "missing"), CONSUL_HTTP_TOKEN: "secret-env-token" }),
    (e: unknown) => e instanceof ConfigError && e.field === "CONSUL_HTTP_TOKEN_FILE" && !e.message.includes("secret-env-token"),
  );
});

test("-datacenter is carried into the config", () => {
  assert.equal(resolveAgentConfig({ datacenter: "dc2" }, {}).datacenter, "dc2");
  assert.equal(resolveAgentConfig({}, {}).datacenter, undefined);
});
