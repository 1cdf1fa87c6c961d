import assert from "node:assert/strict";
import { test } from "node:test";
import { planCheckRegistration, planRegistration } from "../../src/dev-agent/catalog-register.js";
import { HttpError } from "../../src/dev-agent/http-error.js";

const noPorts = () => "no port";
const fails = (body: unknown, status: number, text: string) =>
  assert.throws(() => planRegistration(body, () => 21000), (err: unknown) => {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, status);
    assert.equal(err.message, text);
    return true;
  });

test("a sidecar_service block expands to <id>-sidecar-proxy with Consul's defaults", () => {
  const plan = planRegistration(
    { Name: "web", ID: "web-1", Port: 8080, Address: "10.0.0.5", Tags: ["a"], Meta: { m: "1" }, Connect: { sidecar_service: { ID: "ignored" } } },
    (id) => (id === "web-1-sidecar-proxy" ? 21003 : 0),
  );
  const sc = plan.sidecar!;
  assert.equal(sc.service.id, "web-1-sidecar-proxy");
  assert.equal(sc.service.name, "web-sidecar-proxy");
  assert.equal(sc.service.kind, "connect-proxy");
  assert.equal(sc.service.port, 21003);
  assert.equal(sc.service.address, "10.0.0.5");
  assert.deepEqual(sc.service.tags, ["a"]);
  assert.deepEqual(sc.service.meta, { m: "1" });
  assert.equal(sc.service.sidecarParent, "web-1");
  const p = sc.service.proxy!;
  assert.deepEqual([p.destinationServiceName, p.destinationServiceID, p.localServiceAddress, p.localServicePort], ["web", "web-1", "127.0.0.1", 8080]);
  assert.deepEqual(
    sc.checks.map((c) => [c.id, c.name, c.type, c.tcp, c.intervalMs, c.aliasService]),
    [
      ["service:web-1-sidecar-proxy:1", "Connect Sidecar Listening", "tcp", "10.0.0.5:21003", 10_000, ""],
      ["service:web-1-sidecar-proxy:2", "Connect Sidecar Aliasing web-1", "alias", "", 0, "web-1"],
    ],
  );
});

test("a sidecar without an address checks 127.0.0.1; its own checks, port and proxy fields win", () => {
  const plain = planRegistration({ Name: "web", Port: 8080, Connect: { SidecarService: {} } }, () => 21000).sidecar!;
  assert.equal(plain.checks[0]!.tcp, "127.0.0.1:21000");
  const custom = planRegistration(
    {
      Name: "web", Port: 8080,
      Connect: { SidecarService: { Port: 9999, Proxy: { local_service_port: 7070, Upstreams: [{ DestinationName: "db", LocalBindPort: 9191 }] }, Check: { TTL: "5s" } } },
    },
    noPorts,
  ).sidecar!;
  assert.equal(custom.service.port, 9999);
  assert.equal(custom.service.proxy!.localServicePort, 7070);
  assert.equal(custom.service.proxy!.upstreams[0]!.destinationType, "service");
  assert.deepEqual(custom.checks.map((c) => [c.id, c.type]), [["service:web-sidecar-proxy", "ttl"]]);
});

test("port exhaustion and nested sidecars are Invalid SidecarService", () => {
  assert.throws(
    () => planRegistration({ Name: "web", Port: 1, Connect: { SidecarService: {} } }, () => "no port provided for sidecar_service and none left in the configured range [21000, 21000]"),
    { message: "Invalid SidecarService: no port provided for sidecar_service and none left in the configured range [21000, 21000]" },
  );
  fails({ Name: "web", Port: 1, Connect: { SidecarService: { Connect: { SidecarService: {} } } } }, 400,
    "Validation failed: 1 error occurred:\n\t* A SidecarService cannot have a nested SidecarService\n\n");
});

test("validation texts: name, address, proxy fields, upstreams, checks and unknown fields", () => {
  fails({ Port: 1 }, 400, "Missing service name");
  fails({ Name: "web", Address: "0.0.0.0" }, 400, "Invalid service address");
  fails({ Name: "web", Address: "::" }, 400, "Invalid service address");
  fails({ Name: "p", Kind: "connect-proxy" }, 400,
    "Validation failed: 2 errors occurred:\n\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\t* Port or SocketPath must be set for a connect-proxy\n\n");
  fails({ Name: "p", Kind: "connect-proxy", Port: 1, Proxy: { DestinationServiceName: "web", Upstreams: [{ DestinationName: "", LocalBindPort: 1 }, { DestinationName: "db" }] } }, 400,
    "Validation failed: 2 errors occurred:\n\t* upstream destination name cannot be empty\n\t* upstream local bind port or local socket path must be defined and nonzero\n\n");
  fails({ Name: "web", Check: { TCP: "x:1" } }, 400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks");
  fails({ Name: "web", Check: { Notes: "x" } }, 400, "Invalid check: TTL must be > 0 for TTL checks");
  fails({ Name: "web", Bogus: 1 }, 400, 'Request decode failed: json: unknown field "Bogus"');
  fails({ Name: "web", Proxy: { Nope: 1 } }, 400, 'Request decode failed: json: unknown field "Nope"');
});

test("ID defaults to Name; keys are case-insensitive; check IDs follow service:<id>[:n]", () => {
  const one = planRegistration({ name: "web", port: 80, check: { ttl: "10s" } }, noPorts);
  assert.equal(one.service.id, "web");
  assert.deepEqual(one.checks.map((c) => [c.id, c.name, c.status]), [["service:web", "Service 'web' check", undefined]]);
  const many = planRegistration({ Name: "web", Checks: [{ TTL: "1s" }, { CheckID: "mine", TTL: "1s", Status: "passing" }, { TTL: "1s" }] }, noPorts);
  assert.deepEqual(many.checks.map((c) => [c.id, c.status]), [["service:web:1", undefined], ["mine", "passing"], ["service:web:3", undefined]]);
  assert.deepEqual(many.service.weights, { Passing: 1, Warning: 1 });
});

test("a check registration's ID defaults to its name", () => {
  const { check, serviceId } = planCheckRegistration({ Name: "disk", TTL: "30s", ServiceID: "web" });
  assert.equal(check.id, "disk");
  assert.equal(check.ttlMs, 30_000);
  assert.equal(serviceId, "web");
  assert.throws(() => planCheckRegistration({ TTL: "1s" }), { message: "Missing check name" });
});
