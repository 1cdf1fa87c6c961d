// Port and app checks judged from a registration (pure parts), and the live probes on this host.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { checkAppAddress, checkAppExposure, checkPublicPort } from "../../src/doctor/host-checks.js";
import type { ProxyView } from "../../src/doctor/evidence.js";
import { nonLoopbackAddresses, probeBind, probeTcp } from "../../src/doctor/probe.js";

const view = (over: Partial<ProxyView>): ProxyView => ({
  service: "web",
  proxyId: "web-sidecar-proxy",
  bind: { host: "0.0.0.0", port: 21000 },
  portExplicit: false,
  app: { host: "127.0.0.1", port: 8080 },
  protocol: "tcp",
  ...over,
});
const notRead = { t: "denied" as const, message: "403" };
const noEphemeral = undefined;

test("app-address: loopback and unix sockets pass; any other address FAILs", () => {
  assert.equal(checkAppAddress(view({})).verdict, "PASS");
  assert.equal(checkAppAddress(view({ app: { host: "::1", port: 8080 } })).verdict, "PASS");
  assert.equal(checkAppAddress(view({ app: { socketPath: "/run/web.sock" } })).verdict, "PASS");
  const off = checkAppAddress(view({ app: { host: "10.0.0.5", port: 8080 } }));
  assert.equal(off.verdict, "FAIL");
  assert.match(off.fix ?? "", /LocalServiceAddress = "127\.0\.0\.1"/);
  assert.equal(checkAppAddress(view({ app: { host: "0.0.0.0", port: 8080 } })).verdict, "FAIL");
});

test("public-port: inside the range or explicit passes; loopback, privileged and ephemeral ports WARN", () => {
  assert.equal(checkPublicPort(view({}), notRead, undefined, noEphemeral).verdict, "PASS");
  const explicit = checkPublicPort(view({ bind: { host: "0.0.0.0", port: 9999 }, portExplicit: true }), notRead, undefined, noEphemeral);
  assert.equal(explicit.verdict, "PASS");
  assert.match(explicit.seen, /set explicitly.*open port 9999/);
  assert.equal(checkPublicPort(view({ bind: { host: "127.0.0.1", port: 21000 } }), notRead, undefined, noEphemeral).verdict, "WARN");
  assert.equal(checkPublicPort(view({ bind: { host: "0.0.0.0", port: 443 } }), notRead, undefined, noEphemeral).verdict, "WARN");
  const ephemeral = { min: 32768, max: 60999, reserved: (p: number) => p === 40001 };
  const eph = checkPublicPort(view({ bind: { host: "0.0.0.0", port: 40000 } }), notRead, undefined, ephemeral);
  assert.equal(eph.verdict, "WARN");
  assert.match(eph.fix ?? "", /ip_local_reserved_ports=40000/);
  assert.equal(checkPublicPort(view({ bind: { host: "0.0.0.0", port: 40001 } }), notRead, undefined, ephemeral).verdict, "PASS", "reserved");
  assert.equal(checkPublicPort(view({ bind: undefined }), notRead, undefined, noEphemeral).verdict, "SKIP");
});

test("app-exposure never probes an address that is not this host's", async () => {
  const c = await checkAppExposure(view({ app: { host: "10.99.99.99", port: 8080 } }), {}, 200);
  assert.equal(c.verdict, "SKIP");
  assert.match(c.seen, /not probed/);
});

test("app-exposure SKIPs on a loopback-only host, and WARNs when the app is not listening at all", async (t) => {
  const lo = { lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4" as const, mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" }] };
  assert.equal((await checkAppExposure(view({}), lo, 500)).verdict, "SKIP");
  // a port nobody listens on: bind one, note it, close it
  const srv = createServer();
  await new Promise<void>((r) => srv.listen({ host: "127.0.0.1", port: 0 }, r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const ifaces = { lo: lo.lo, fake: [{ address: "127.0.0.2", netmask: "255.0.0.0", family: "IPv4" as const, mac: "02:00:00:00:00:01", internal: false, cidr: "127.0.0.2/8" }] };
  const c = await checkAppExposure(view({ app: { host: "127.0.0.1", port } }), ifaces, 500);
  assert.equal(c.verdict, "WARN");
  assert.match(c.seen, /does not answer/);
  t.diagnostic(c.seen);
});

test("app-exposure on an address list: an app on the wildcard answers on each; one on 127.0.0.1 does not", async (t) => {
  // 127.0.0.2 stands in for a non-loopback interface address here, so this test runs on any machine
  const ifaces = { fake: [{ address: "127.0.0.2", netmask: "255.0.0.0", family: "IPv4" as const, mac: "02:00:00:00:00:01", internal: false, cidr: "127.0.0.2/8" }] };
  const wide = createServer((s) => s.on("error", () => undefined).resume().end());
  await new Promise<void>((r) => wide.listen({ host: "0.0.0.0", port: 0 }, r));
  t.after(() => new Promise<void>((r) => wide.close(() => r())));
  const widePort = (wide.address() as { port: number }).port;
  const exposed = await checkAppExposure(view({ app: { host: "127.0.0.1", port: widePort } }), ifaces, 1000);
  assert.equal(exposed.verdict, "FAIL");
  assert.ok(exposed.seen.includes(`127.0.0.2:${widePort}`));

  const narrow = createServer((s) => s.on("error", () => undefined).resume().end());
  await new Promise<void>((r) => narrow.listen({ host: "127.0.0.1", port: 0 }, r));
  t.after(() => new Promise<void>((r) => narrow.close(() => r())));
  const narrowPort = (narrow.address() as { port: number }).port;
  const safe = await checkAppExposure(view({ app: { host: "127.0.0.1", port: narrowPort } }), ifaces, 1000);
  assert.equal(safe.verdict, "PASS");
});

test("probes: bind says in_use for a held port, free after; tcp says open or refused; link-local addresses are left out", async () => {
  const srv = createServer((s) => s.on("error", () => undefined).resume().end());
  await new Promise<void>((r) => srv.listen({ host: "127.0.0.1", port: 0 }, r));
  const port = (srv.address() as { port: number }).port;
  assert.equal(await probeBind("127.0.0.1", port), "in_use");
  assert.equal(await probeTcp("127.0.0.1", port, 1000), "open");
  await new Promise<void>((r) => srv.close(() => r()));
  assert.equal(await probeBind("127.0.0.1", port), "free");
  assert.equal(await probeTcp("127.0.0.1", port, 1000), "refused");
  assert.deepEqual(
    nonLoopbackAddresses({
      eth0: [
        { address: "192.0.2.2", netmask: "255.255.255.0", family: "IPv4", mac: "", internal: false, cidr: null },
        { address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "", internal: false, cidr: null, scopeid: 2 },
        { address: "fd00::2", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "", internal: false, cidr: null, scopeid: 0 },
      ],
      lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "", internal: true, cidr: null }],
    }),
    ["192.0.2.2", "fd00::2"],
  );
});
