import assert from "node:assert/strict";
import { test } from "node:test";
import { keepPrevious, planConfigChange } from "../../src/sidecar/config-change.js";
import type { ProxySettings } from "../../src/agent/index.js";

const base: ProxySettings = {
  proxyId: "web-sidecar-proxy",
  service: "web",
  datacenter: "dc1",
  bind: { host: "0.0.0.0", port: 21000 },
  app: { host: "127.0.0.1", port: 8080 },
  handshakeTimeoutMs: 10_000,
  localConnectTimeoutMs: 1_000,
  protocol: "tcp",
  upstreams: [],
  metricsBindAddr: undefined,
};

test("the same registration again plans nothing", () => {
  assert.deepEqual(planConfigChange(base, { ...base, upstreams: [] }, true), []);
});

test("a new bind port rebinds a running public listener; port 0 stops it; a bind with none running opens one", () => {
  const moved = { ...base, bind: { host: "0.0.0.0", port: 21001 } };
  assert.deepEqual(planConfigChange(base, moved, true), [{ t: "rebind_public", bind: { host: "0.0.0.0", port: 21001 } }]);
  assert.deepEqual(planConfigChange(base, { ...base, bind: undefined }, true), [{ t: "stop_public" }]);
  assert.deepEqual(planConfigChange({ ...base, bind: undefined }, base, false), [{ t: "open_public", bind: base.bind }]);
});

test("actions come in the order they must run: identity, bind, app settings, upstreams, admin", () => {
  const next: ProxySettings = {
    ...base,
    service: "api",
    bind: { host: "0.0.0.0", port: 21002 },
    localConnectTimeoutMs: 250,
    upstreams: [{ destinationName: "db" } as ProxySettings["upstreams"][number]],
    metricsBindAddr: { host: "127.0.0.1", port: 9102 },
  };
  assert.deepEqual(
    planConfigChange(base, next, true).map((a) => a.t),
    ["keep_identity", "rebind_public", "update_app", "apply_upstreams", "move_admin"],
  );
});

test("an action that failed keeps the previous value of exactly what it changes", () => {
  const next: ProxySettings = { ...base, service: "api", bind: { host: "0.0.0.0", port: 21002 }, app: { socketPath: "/run/app.sock" }, handshakeTimeoutMs: 5 };
  const [identity, rebind, app] = planConfigChange(base, next, true);
  assert.equal(keepPrevious(identity!, base, next).service, "web");
  assert.deepEqual(keepPrevious(rebind!, base, next), { ...next, bind: base.bind });
  const kept = keepPrevious(app!, base, next);
  assert.deepEqual([kept.app, kept.handshakeTimeoutMs, kept.bind], [base.app, base.handshakeTimeoutMs, next.bind]);
});
