// resolveAgentConfig on arbitrary flags and CONSUL_* environment: an AgentConfig that holds a
// usable address, or a ConfigError naming a flag or variable; the token never appears in a message.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { resolveAgentConfig, type AgentFlags } from "../../src/agent/index.js";
import { ConfigError } from "../../src/net/index.js";
import { RUNS, expectOnly } from "./arbitraries.js";

const TOKEN = "tok-3b7d9e-SECRET";
const FIELDS = new Set([
  "http-addr", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "client-cert", "client-key",
  "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY", "token-file", "CONSUL_HTTP_TOKEN_FILE",
]);

test("fuzz: resolveAgentConfig returns a usable config or throws ConfigError naming a flag or variable", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "fuzz-agent-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `  ${TOKEN}\n`);
  // Token files are real paths we control: a file, a directory, a missing file, or nothing.
  const fileChoice = fc.constantFrom(undefined, "", tokenFile, dir, join(dir, "missing"));
  const addr = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.tuple(fc.constantFrom("", "http://", "https://", "unix://", "ftp://", "://"), fc.constantFrom("127.0.0.1", "[::1]", "::1", "localhost", "", "[::1"), fc.constantFrom("", ":8500", ":0", ":65536", ":x", "/prefix/", ":8500/a/b")).map((p) => p.join("")),
  );
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  const flags: fc.Arbitrary<AgentFlags> = fc.record(
    {
      httpAddr: maybe(addr),
      token: maybe(fc.constantFrom(TOKEN, "")),
      tokenFile: fileChoice,
      caFile: maybe(fc.string({ maxLength: 10 })),
      caPath: maybe(fc.string({ maxLength: 10 })),
      clientCert: maybe(fc.constantFrom("c.pem", "")),
      clientKey: maybe(fc.constantFrom("k.pem", "")),
      tlsServerName: maybe(fc.constantFrom("consul", "consul:8501", "[::1]:8501", "[::1", "a:b:c", "")),
      datacenter: maybe(fc.string({ maxLength: 6 })),
    },
    { requiredKeys: [] },
  );
  const bool = fc.oneof(fc.constantFrom("true", "false", "1", "0", "T", "F", "yes", "", " true"), fc.string({ maxLength: 4 }));
  const env = fc.record(
    {
      CONSUL_HTTP_ADDR: addr,
      CONSUL_HTTP_SSL: bool,
      CONSUL_HTTP_SSL_VERIFY: bool,
      CONSUL_HTTP_TOKEN: fc.constantFrom(TOKEN, ""),
      CONSUL_HTTP_TOKEN_FILE: fileChoice.map((f) => f ?? ""),
      CONSUL_CACERT: fc.string({ maxLength: 8 }),
      CONSUL_CLIENT_CERT: fc.constantFrom("c.pem", ""),
      CONSUL_CLIENT_KEY: fc.constantFrom("k.pem", ""),
      CONSUL_TLS_SERVER_NAME: fc.constantFrom("consul:8501", "x"),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(flags, env, (f, e) => {
      const r = expectOnly(() => resolveAgentConfig(f, e), ConfigError, (err) => {
        assert.ok(FIELDS.has(err.field), `unexpected field ${err.field}: ${err.message}`);
        assert.ok(!err.message.includes(TOKEN), "a token leaked into an error message");
      });
      if (!r.ok) return;
      const cfg = r.value;
      if (cfg.address.scheme === "unix") assert.ok(cfg.address.socketPath.length > 0);
      else {
        assert.ok(cfg.address.port >= 1 && cfg.address.port <= 65535);
        assert.ok(cfg.address.host.length > 0);
        assert.ok(cfg.address.pathPrefix === "" || (cfg.address.pathPrefix.startsWith("/") && !cfg.address.pathPrefix.endsWith("/")));
      }
      assert.ok(cfg.token === "" || cfg.token === TOKEN, "the token is the flag's, the file's (trimmed) or the env's");
      // spec §1.1 precedence: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN
      if (f.tokenFile) assert.equal(cfg.tokenFile, f.tokenFile);
      else if (f.token) assert.equal(cfg.tokenFile, undefined);
      assert.equal(cfg.tls.certFile === undefined, cfg.tls.keyFile === undefined, "cert and key come together");
      if (cfg.tls.serverName !== undefined) assert.ok(!/:\d+$/.test(cfg.tls.serverName) || cfg.tls.serverName.split(":").length > 2);
    }),
    { numRuns: RUNS * 2 },
  );
});
