// The CLI's flag parsing (src/cli.ts parseCommand) on arbitrary command lines: a Command, or a
// UsageError / ConfigError (both exit 2) — never another throw, never a process exit.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ConfigError } from "../../src/net/index.js";
import { RUNS } from "./arbitraries.js";

const cli = await import("../../src/cli/index.js");
const { parseCommand, UsageError } = cli;

const PROXY_FLAGS = [
  "proxy-id", "sidecar-for", "service", "service-addr", "listen", "upstream", "register", "register-id", "http-addr", "token",
  "ca-file", "ca-path", "client-cert", "client-key", "tls-server-name", "datacenter", "stale", "metrics-addr", "drain-timeout",
  "allow-non-loopback-app", "log-connections", "revoke-live", "authz-max-stale", "max-conns", "idle-timeout", "log-level", "log-json",
];
const DEV_FLAGS = [
  "http-addr", "https-addr", "cert-file", "key-file", "ca-file", "verify-incoming", "datacenter", "node-name", "acls-enabled",
  "acl-default-policy", "initial-management-token", "leaf-cert-ttl", "sidecar-min-port", "sidecar-max-port", "log-level",
];
const VALUES = [
  "", "web", "127.0.0.1:8080", "[::1]:0", "::1", "localhost:99999", "db:9191", "db.query:127.0.0.1:9292", "db.bad:1", ":1", "10s", "0",
  "-1s", "1h", "abc", "65536", "true", "false", "debug", "LOUD", "allow", "deny", "unix:///tmp/x.sock", "-", "--", "-x", "=",
];

const flagToken = (names: string[]) =>
  fc.tuple(fc.constantFrom("-", "--", "--no-"), fc.constantFrom(...names, "bogus", "h", "version")).map(([d, n]) => d + n);
const argv = fc
  .tuple(
    fc.constantFrom("proxy", "dev-agent", "demo", "help", "bogus", "-proxy-id", ""),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.tuple(flagToken(PROXY_FLAGS), fc.constantFrom(...VALUES)).map(([f, v]) => [f, v]) },
        { weight: 2, arbitrary: fc.tuple(flagToken(DEV_FLAGS), fc.constantFrom(...VALUES)).map(([f, v]) => [`${f}=${v}`]) },
        { weight: 1, arbitrary: flagToken(PROXY_FLAGS).map((f) => [f]) },
        { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((s) => [s]) },
      ),
      { maxLength: 8 },
    ),
  )
  .map(([cmd, rest]) => [cmd, ...rest.flat()])
  // -h prints help; keep most runs on the parsing path.
  .filter((a) => !a.slice(1).some((x) => x === "-h" || x === "--help" || x === "-help"));

test("fuzz: parseCommand resolves to a command or rejects with UsageError or ConfigError", async () => {
  const env = { CONSUL_HTTP_TOKEN: "" };
  await fc.assert(
    fc.asyncProperty(argv, async (args) => {
      try {
        const c = await parseCommand(args, env);
        assert.ok(["proxy", "dev-agent", "demo", "help"].includes(c.cmd));
      } catch (err) {
        if (!(err instanceof UsageError) && !(err instanceof ConfigError)) {
          assert.fail(`${JSON.stringify(args)} threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
        }
        assert.ok((err as Error).message.length > 0);
        if (err instanceof ConfigError) assert.ok(err.message.startsWith(`${err.field}: `));
      }
    }),
    { numRuns: RUNS, examples: [[["proxy"]], [["proxy", "-service", "web", "-listen", ":1"]], [["proxy", "-service=web", "-upstream", "db.bad:1"]], [["dev-agent", "-sidecar-min-port", "65536"]]] },
  );
});

test("a valid static proxy command line parses to its options", async () => {
  const c = await parseCommand(
    ["proxy", "-service", "web", "-service-addr", "127.0.0.1:8080", "-listen", "127.0.0.1:21000", "-upstream", "db:9191", "-max-conns", "7", "-idle-timeout", "1m"],
    {},
  );
  assert.equal(c.cmd, "proxy");
  if (c.cmd !== "proxy") return;
  assert.equal(c.opts.maxConns, 7);
  assert.equal(c.opts.idleTimeoutMs, 60_000);
  assert.equal(c.opts.source.t, "static");
});
