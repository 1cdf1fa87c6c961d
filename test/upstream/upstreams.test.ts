import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { canBind } from "../../src/net/index.js";
import { test } from "../support/leaks.js";
import type { TLSSocket } from "node:tls";
import {
  closedWithData,
  connectionLine,
  counterValue,
  dial,
  liveConnection,
  portOf,
  roundTrip,
  startMesh,
  upstream,
} from "./harness.js";
import { until } from "../support/wait.js";

test("bytes round-trip through the upstream listener and mTLS to the instance (100 MB, hash-checked)", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);

  const client = await dial(portOf(ups, "db"));
  const sent = createHash("sha256");
  const got = createHash("sha256");
  let gotBytes = 0;
  client.on("data", (c: Buffer) => {
    got.update(c);
    gotBytes += c.length;
  });
  const ended = once(client, "end");
  const total = 100 * 1024 * 1024;
  const chunk = randomBytes(256 * 1024);
  for (let n = 0; n < total; n += chunk.length) {
    sent.update(chunk);
    if (!client.write(chunk)) await once(client, "drain");
  }
  client.end();
  await ended;
  client.destroy();
  assert.equal(gotBytes, total);
  assert.equal(got.digest("hex"), sent.digest("hex"));

  const line = await connectionLine(mesh.log, "done");
  assert.equal(line.listener, "upstream:db");
  assert.equal(line.bytesFromClient, total);
  assert.equal(line.bytesFromServer, total);
  assert.match(String(line.instance), /^127\.0\.0\.1:\d+$/);
  assert.equal(await counterValue(mesh.metrics.receivedBytes, { listener: "upstream:db" }), total);
  assert.equal(await counterValue(mesh.metrics.connectionsClosed, { listener: "upstream:db", reason: "done" }), 1);
});

test("half-close works both ways: the client ends first, then the server ends first", async (t) => {
  const mesh = await startMesh(t);
  // The server answers after the client's FIN in one case, and closes its side first in the other.
  await mesh.startInstance({
    service: "db",
    id: "db-1",
    handler: (sock: TLSSocket) => {
      let text = "";
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => {
        text += d;
        if (text === "server-first?") sock.end("server done; ");
      });
      sock.on("end", () => {
        if (text.startsWith("client-first")) sock.end(`got ${text.length} bytes after your FIN`);
        else sock.destroy();
        if (text.startsWith("server-first?")) serverSaw.push(text);
      });
    },
  });
  const serverSaw: string[] = [];
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");

  // Client ends first; the server still answers.
  assert.equal(await roundTrip(port, "client-first"), "got 12 bytes after your FIN");

  // Server ends first; the client, told so, still sends and the server still receives.
  const c = await dial(port);
  c.setEncoding("utf8");
  let text = "";
  c.on("data", (d: string) => (text += d));
  c.write("server-first?");
  await once(c, "end");
  assert.equal(text, "server done; ");
  c.end(" and the client's last words");
  await once(c, "close");
  await until(() => serverSaw.length === 1, "the server to see the client's end");
  assert.equal(serverSaw[0], "server-first? and the client's last words");
});

test("no healthy instance: the client is closed at once with reason no_healthy_instances", async (t) => {
  const mesh = await startMesh(t);
  const ups = mesh.upstreams();
  await ups.apply([upstream("nothing-here")]);
  const c = await dial(portOf(ups, "nothing-here"));
  assert.equal(await closedWithData(c), "");
  const line = await connectionLine(mesh.log, "no_healthy_instances");
  assert.equal(line.listener, "upstream:nothing-here");
  assert.equal(await counterValue(mesh.metrics.connectionsRejected, { listener: "upstream:nothing-here", reason: "no_healthy_instances" }), 1);

  // All instances critical is the same thing.
  await mesh.startInstance({ service: "db", id: "db-1" });
  await mesh.fail("db-1-ttl");
  await ups.apply([upstream("nothing-here"), upstream("db", { localBindAddress: "127.0.0.2" })]);
  const c2 = await dial(portOf(ups, "db"), "127.0.0.2");
  assert.equal(await closedWithData(c2), "");
  assert.equal(await counterValue(mesh.metrics.connectionsRejected, { listener: "upstream:db", reason: "no_healthy_instances" }), 1);
});

test("three instances, one killed: no new connection fails and the dead one gets no dials after it is ejected", async (t) => {
  const mesh = await startMesh(t);
  const a = await mesh.startInstance({ service: "db", id: "db-a" });
  const b = await mesh.startInstance({ service: "db", id: "db-b", kind: "proxy" });
  const c = await mesh.startInstance({ service: "db", id: "db-c" });
  // A frozen clock: the ejection cannot run out during the test, whatever the machine's speed.
  const ups = mesh.upstreams({ now: () => 1_000_000 });
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");
  await until(() => ups.status()[0]!.instances.length === 3, "three instances discovered");

  // Ties are broken at random: with 40 connections each instance gets some, but for a 1e-7 chance.
  for (let i = 0; i < 40; i++) assert.equal(await roundTrip(port, `ping ${i}`), `ping ${i}`);
  assert.ok(a.accepts > 0 && b.accepts > 0 && c.accepts > 0, `spread: ${a.accepts}/${b.accepts}/${c.accepts}`);

  await b.kill();
  const bAddr = `127.0.0.1:${b.port}`;
  const dialsBefore = await counterValue(mesh.metrics.upstreamDialAttempts, { upstream: "db", instance: bAddr });
  const acceptsBefore = a.accepts + c.accepts;
  for (let i = 0; i < 30; i++) assert.equal(await roundTrip(port, `after ${i}`), `after ${i}`);
  // And concurrently, too.
  const parallel = await Promise.all(Array.from({ length: 10 }, (_, i) => roundTrip(port, `par ${i}`)));
  assert.deepEqual(parallel, Array.from({ length: 10 }, (_, i) => `par ${i}`));

  const deadDials = (await counterValue(mesh.metrics.upstreamDialAttempts, { upstream: "db", instance: bAddr })) - dialsBefore;
  assert.ok(deadDials <= 2, `dead instance dialled ${deadDials} times`);
  assert.equal(a.accepts + c.accepts - acceptsBefore, 40);
  // Two failures eject it (it is picked at random among equals, so almost surely twice in 40 tries).
  const ejected = await counterValue(mesh.metrics.upstreamEjections, { upstream: "db", instance: bAddr });
  assert.equal(ejected, deadDials === 2 ? 1 : 0);
  const st = ups.status()[0]!.instances.find((i) => i.address === bAddr);
  assert.equal(st?.ejectedUntilMs !== undefined, ejected === 1, "status shows the ejection");
});

/** Two instances of db, both discovered by one upstream listener. */
async function twoDbInstances(t: TestContext) {
  const mesh = await startMesh(t);
  const a = await mesh.startInstance({ service: "db", id: "db-a" });
  const b = await mesh.startInstance({ service: "db", id: "db-b" });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");
  await until(() => ups.status()[0]!.instances.length === 2, "two instances discovered");
  return { mesh, a, b, ups, port };
}

test("an instance that dies under a live connection: the client is closed, server_reset is logged, new connections fail over", async (t) => {
  const { mesh, a, b, ups, port } = await twoDbInstances(t);

  const live = await liveConnection(port, "hi");
  const [dying, healthy] = a.sockets.size === 1 ? [a, b] : [b, a];
  assert.equal(dying.sockets.size, 1, "the live connection is on one instance");

  // The reset is passed on: the client sees what it would have seen talking to the instance directly.
  const clientError = once(live, "error");
  await dying.kill({ reset: true });
  const [err] = (await clientError) as [NodeJS.ErrnoException];
  assert.equal(err.code, "ECONNRESET");
  live.destroy();
  const line = await connectionLine(mesh.log, "server_reset");
  assert.equal(line.instance, `127.0.0.1:${dying.port}`);
  assert.equal(await counterValue(mesh.metrics.connectionsClosed, { listener: "upstream:db", reason: "server_reset" }), 1);

  // New connections go to the healthy one: a dial of the dead one fails over within the connection.
  const before = healthy.accepts;
  for (let i = 0; i < 6; i++) assert.equal(await roundTrip(port, `after ${i}`), `after ${i}`);
  assert.equal(healthy.accepts - before, 6);
});

test("the upstream listener refuses a connection over -max-conns with max_conns, logged and counted, and accepts again below it", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  await mesh.startInstance({ service: "cache", id: "cache-1" });
  const ups = mesh.upstreams({ maxConns: 2 });
  await ups.apply([upstream("db"), upstream("cache", { localBindAddress: "127.0.0.2" })]);
  const port = portOf(ups, "db");

  const held = [await liveConnection(port, "held 0"), await liveConnection(port, "held 1")];
  const over = await dial(port);
  over.on("error", () => {}); // our write may meet the close
  over.write("over");
  const outcome = await Promise.race([once(over, "data").then(() => "echoed"), once(over, "end").then(() => "ended")]);
  assert.equal(outcome, "ended", "refused: closed, nothing carried");
  over.destroy();
  const line = await connectionLine(mesh.log, "max_conns");
  assert.equal(line.listener, "upstream:db");
  assert.equal(line.msg, "upstream connection refused");
  assert.equal(await counterValue(mesh.metrics.connectionsRejected, { listener: "upstream:db", reason: "max_conns" }), 1);

  // Each listener has its own count: the other upstream is not affected by db's two.
  assert.equal(await roundTrip(portOf(ups, "cache"), "cache ok", "127.0.0.2"), "cache ok");
  // Below the limit again, a new connection is carried.
  held[0]!.end();
  await closedWithData(held[0]!);
  await until(() => ups.status()[0]!.activeConns === 1, "db's first held connection to end");
  assert.equal(await roundTrip(port, "again"), "again");
  held[1]!.end();
  await closedWithData(held[1]!);
  assert.equal(await counterValue(mesh.metrics.connectionsRejected, { listener: "upstream:db", reason: "max_conns" }), 1);
});

test("IPv6 loopback: an upstream listener on [::1] carries traffic to an instance on ::1", async (t) => {
  if (!(await canBind("::1", 0))) return t.skip("this host has no IPv6 loopback (::1): the IPv6 case is not checked");
  const mesh = await startMesh(t);
  const inst = await mesh.startInstance({ service: "db", id: "db-v6", host: "::1" });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db", { localBindAddress: "::1" })]);
  const port = portOf(ups, "db");
  assert.equal(ups.status()[0]!.bind, `[::1]:${port}`);
  assert.equal(await roundTrip(port, "over IPv6", "::1"), "over IPv6");
  const line = await connectionLine(mesh.log, "done");
  assert.equal(line.instance, `[::1]:${inst.port}`);
  assert.match(String(line.client), /^\[::1\]:\d+$/);
});

test("an instance turned critical stops receiving new connections", async (t) => {
  const { mesh, a, b, ups, port } = await twoDbInstances(t);

  await mesh.fail("db-b-ttl");
  await until(() => ups.status()[0]!.instances.length === 1, "the critical instance to leave the set");
  const bBefore = b.accepts;
  for (let i = 0; i < 10; i++) assert.equal(await roundTrip(port, `x${i}`), `x${i}`);
  assert.equal(b.accepts, bBefore);
  assert.ok(a.accepts >= 10);

  await mesh.pass("db-b-ttl");
  await until(() => ups.status()[0]!.instances.length === 2, "the instance to come back");
});

test("upstreams added and removed by apply() while traffic flows on another, which is untouched", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  await mesh.startInstance({ service: "cache", id: "cache-1" });
  const ups = mesh.upstreams();
  const db = upstream("db");
  await ups.apply([db]);
  const dbPort = portOf(ups, "db");

  // A long-lived connection on db, exchanging data throughout.
  const live = await dial(dbPort);
  live.setEncoding("utf8");
  const exchange = async (msg: string): Promise<void> => {
    live.write(msg);
    let got = "";
    while (got.length < msg.length) got += (await once(live, "data"))[0] as string;
    assert.equal(got, msg);
  };
  await exchange("before");

  const cache = upstream("cache", { localBindAddress: "127.0.0.2", config: { connect_timeout_ms: "2500" } });
  await ups.apply([db, cache]);
  assert.equal(portOf(ups, "db"), dbPort, "the db listener is the same");
  const cachePort = portOf(ups, "cache");
  assert.equal(ups.status()[1]!.connectTimeoutMs, 2500);
  assert.equal(await roundTrip(cachePort, "to cache", "127.0.0.2"), "to cache");
  await exchange("during");

  // A live cache connection survives the removal of its listener; new ones are refused.
  const cacheLive = await dial(cachePort, "127.0.0.2");
  cacheLive.setEncoding("utf8");
  cacheLive.write("still here");
  assert.equal((await once(cacheLive, "data"))[0], "still here");
  await ups.apply([upstream("db")]); // an equal entry: untouched
  assert.deepEqual(ups.status().map((s) => s.name), ["db"]);
  const refused = netConnect({ port: cachePort, host: "127.0.0.2" });
  const [err] = (await once(refused, "error")) as [NodeJS.ErrnoException];
  assert.equal(err.code, "ECONNREFUSED");
  cacheLive.write("and still");
  assert.equal((await once(cacheLive, "data"))[0], "and still");
  cacheLive.end();
  await once(cacheLive, "close");

  await exchange("after");
  live.end();
  await once(live, "close");
  assert.equal(portOf(ups, "db"), dbPort);
  const dbLine = await connectionLine(mesh.log, "done");
  assert.equal(dbLine.listener, "upstream:cache"); // the first to finish: the removed listener's live connection
});

test("a changed destination on the same bind swaps the route; a bad entry changes nothing", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1", handler: (s) => s.end("i am db") });
  await mesh.startInstance({ service: "db2", id: "db2-1", handler: (s) => s.end("i am db2") });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");
  assert.equal(await roundTrip(port, ""), "i am db");

  await assert.rejects(ups.apply([upstream("db2"), upstream("x", { config: { connect_timeout_ms: "soon" } })]), { code: "config" });
  assert.equal(await roundTrip(port, ""), "i am db");
  await assert.rejects(ups.apply([upstream("a"), upstream("b")]), { code: "config" }); // same bind twice

  await ups.apply([upstream("db2")]);
  assert.equal(portOf(ups, "db2"), port);
  assert.equal(await roundTrip(port, ""), "i am db2");
});

test("a prepared query upstream resolves through the query and dials its instances", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  const created = await fetch(mesh.dev.httpUrl + "/v1/query", {
    method: "POST",
    headers: { "X-Consul-Token": mesh.dev.managementToken },
    body: JSON.stringify({ Name: "db-query", Service: { Service: "db" } }),
  });
  assert.equal(created.status, 200);
  const ups = mesh.upstreams();
  await ups.apply([upstream("db-query", { destinationType: "prepared_query" })]);
  assert.equal(await roundTrip(portOf(ups, "db-query"), "via query"), "via query");
});

test("a unix-socket upstream listener gets LocalBindSocketMode and carries traffic", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  const dir = await mkdtemp(join(tmpdir(), "upstream-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "db.sock");
  const ups = mesh.upstreams();
  await ups.apply([upstream("db", { localBindAddress: "", localBindSocketPath: path, localBindSocketMode: "0600" })]);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(ups.status()[0]!.bind, `unix:${path}`);

  const s = netConnect({ path, allowHalfOpen: true });
  await once(s, "connect");
  s.setEncoding("utf8");
  let got = "";
  s.on("data", (d: string) => (got += d));
  s.end("over a unix socket");
  await once(s, "end");
  assert.equal(got, "over a unix socket");

  await ups.apply([upstream("db", { localBindAddress: "", localBindSocketPath: path, localBindSocketMode: "0660" })]);
  assert.equal((await stat(path)).mode & 0o777, 0o660);
  await ups.close();
  await assert.rejects(stat(path), { code: "ENOENT" });
});

test("close() stops accepting and resolves once live connections have ended", async (t) => {
  const mesh = await startMesh(t);
  await mesh.startInstance({ service: "db", id: "db-1" });
  const ups = mesh.upstreams();
  await ups.apply([upstream("db")]);
  const port = portOf(ups, "db");
  const live = await liveConnection(port, "hi");

  let closed = false;
  const closing = ups.close().then(() => (closed = true));
  const refused = netConnect({ port, host: "127.0.0.1" });
  const [err] = (await once(refused, "error")) as [NodeJS.ErrnoException];
  assert.equal(err.code, "ECONNREFUSED");
  live.write("still");
  assert.equal((await once(live, "data"))[0], "still");
  assert.equal(closed, false);
  live.end();
  await closing;
  assert.equal(await counterValue(mesh.metrics.connectionsActive, { listener: "upstream:db" }), 0);
});
