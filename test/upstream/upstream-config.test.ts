import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_CONNECT_TIMEOUT_MS, parseConnectTimeoutMs } from "../../src/upstream/index.js";
import { toUpstreamSpec } from "../../src/upstream/upstream-config.js";
import { upstream } from "./harness.js";

test("connect_timeout_ms takes a number or a numeric string; absent means 10 s", () => {
  assert.equal(parseConnectTimeoutMs(undefined, "f"), DEFAULT_CONNECT_TIMEOUT_MS);
  assert.equal(DEFAULT_CONNECT_TIMEOUT_MS, 10_000);
  assert.equal(parseConnectTimeoutMs(5000, "f"), 5000);
  assert.equal(parseConnectTimeoutMs(2500.0, "f"), 2500); // agent JSON numbers are floats (spec §9.5)
  assert.equal(parseConnectTimeoutMs("750", "f"), 750);
  for (const bad of [0, -1, "soon", "1e3x", true, {}, 10 * 60_000 + 1]) {
    assert.throws(() => parseConnectTimeoutMs(bad, "upstreams[0].Config.connect_timeout_ms"), { code: "config", field: "upstreams[0].Config.connect_timeout_ms" });
  }
});

test("an upstream's identity is its bind plus its destination", () => {
  const strict = { allowEphemeralPort: false };
  const a = toUpstreamSpec(upstream("db", { localBindPort: 9191 }), "u", strict);
  assert.equal(a.bindKey, "tcp:127.0.0.1:9191");
  assert.equal(a.destinationKey, "service|default|db|");
  assert.equal(a.listenerLabel, "upstream:db");
  const v6 = toUpstreamSpec(upstream("db", { localBindAddress: "::1", localBindPort: 9191, datacenter: "dc2" }), "u", strict);
  assert.equal(v6.bindKey, "tcp:[::1]:9191");
  assert.equal(v6.destinationKey, "service|default|db|dc2");
  const sock = toUpstreamSpec(upstream("db", { localBindAddress: "", localBindSocketPath: "/tmp/x.sock", localBindSocketMode: "0600" }), "u", strict);
  assert.deepEqual(sock.bind, { kind: "unix", path: "/tmp/x.sock", mode: 0o600 });

  assert.throws(() => toUpstreamSpec(upstream("db"), "u", strict), { code: "config", field: "u.LocalBindPort" });
  assert.throws(() => toUpstreamSpec(upstream(""), "u", strict), { code: "config", field: "u.DestinationName" });
  assert.throws(() => toUpstreamSpec(upstream("db", { localBindSocketPath: "/tmp/x", localBindSocketMode: "rw" }), "u", strict), { code: "config" });
});
