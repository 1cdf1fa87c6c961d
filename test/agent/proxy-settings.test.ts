import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAgentService, proxySettingsFromService, readProxyRegistration } from "../../src/agent/index.js";
import { ConfigError } from "../../src/net/index.js";

// The shape of spec §6.5's example, with overrides.
function service(over: Record<string, unknown> = {}, proxy: Record<string, unknown> = {}) {
  return parseAgentService({
    Kind: "connect-proxy", ID: "web-sidecar-proxy", Service: "web-sidecar-proxy", Tags: [], Meta: {},
    Port: 21000, Address: "", Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, ContentHash: "4ecd29c7bc647ca8",
    Proxy: {
      DestinationServiceName: "web", DestinationServiceID: "web", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080,
      Upstreams: [{ DestinationType: "service", DestinationName: "db", LocalBindPort: 9191, MeshGateway: {} }],
      MeshGateway: {}, Expose: {}, ...proxy,
    },
    Datacenter: "dc1",
    ...over,
  });
}

test("a registration gives the service, bind (empty Address → 0.0.0.0), app, default timeouts and upstreams", () => {
  const s = proxySettingsFromService(service());
  assert.equal(s.service, "web");
  assert.equal(s.proxyId, "web-sidecar-proxy");
  assert.equal(s.datacenter, "dc1");
  assert.deepEqual(s.bind, { host: "0.0.0.0", port: 21000 });
  assert.deepEqual(s.app, { host: "127.0.0.1", port: 8080 });
  assert.equal(s.handshakeTimeoutMs, 10_000);
  assert.equal(s.localConnectTimeoutMs, 1_000);
  assert.deepEqual(s.upstreams.map((u) => [u.destinationName, u.localBindPort]), [["db", 9191]]);
});

test("Config keys are honoured, including bind_address, bind_port and local_service_address (numbers or numeric strings)", () => {
  const s = proxySettingsFromService(
    service({}, {
      Config: {
        bind_address: "127.0.0.2", bind_port: "21001", local_service_address: "127.0.0.3:9000",
        handshake_timeout_ms: "2500", local_connect_timeout_ms: 300, metrics_bind_addr: "127.0.0.1:9102",
      },
    }),
  );
  assert.deepEqual(s.bind, { host: "127.0.0.2", port: 21001 });
  assert.deepEqual(s.app, { host: "127.0.0.3", port: 9000 });
  assert.equal(s.handshakeTimeoutMs, 2500);
  assert.equal(s.localConnectTimeoutMs, 300);
  assert.deepEqual(s.metricsBindAddr, { host: "127.0.0.1", port: 9102 });
});

test("an IPv6 bind_address is taken with or without brackets", () => {
  for (const addr of ["[::1]", "::1"]) {
    const s = proxySettingsFromService(service({}, { Config: { bind_address: addr, bind_port: 21001 } }));
    assert.deepEqual(s.bind, { host: "::1", port: 21001 }, addr);
  }
});

test("a socket-path app, and port 0 meaning no public listener", () => {
  const sock = proxySettingsFromService(service({}, { LocalServicePort: 0, LocalServiceAddress: "", LocalServiceSocketPath: "/run/web.sock" }));
  assert.deepEqual(sock.app, { socketPath: "/run/web.sock" });
  const none = proxySettingsFromService(service({ Port: 0 }, { LocalServicePort: 0, LocalServiceAddress: "" }));
  assert.equal(none.bind, undefined);
  assert.equal(none.app, undefined);
});

test("bad registrations throw ConfigError naming the field", () => {
  const field = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.field;
    }
    return assert.fail("accepted");
  };
  assert.equal(field(() => proxySettingsFromService(service({ Kind: "" }))), "Kind");
  assert.equal(field(() => proxySettingsFromService(service({}, { Config: { handshake_timeout_ms: "soon" } }))), "Proxy.Config.handshake_timeout_ms");
  assert.equal(field(() => proxySettingsFromService(service({}, { Config: { bind_port: 70000 } }))), "Proxy.Config.bind_port");
  assert.equal(field(() => proxySettingsFromService(service({}, { Config: { local_service_address: "nope" } }))), "Proxy.Config.local_service_address");
  assert.equal(field(() => proxySettingsFromService(service({}, { LocalServicePort: 0 }))), "Proxy.LocalServicePort");
});

test("the bind port is explicit only when Proxy.Config.bind_port sets it, not when the registration's Port gives it", () => {
  assert.equal(readProxyRegistration(service()).bindPortExplicit, false);
  const set = readProxyRegistration(service({}, { Config: { bind_port: "21000" } }));
  assert.equal(set.bindPortExplicit, true);
  assert.deepEqual(set.settings, proxySettingsFromService(service()), "the same settings either way");
});
