// Proves on real sockets that each Node internal src/net/node-internals.ts relies on still does what
// it is used for. A Node upgrade that breaks one fails here, not in production as a silent slowdown.
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { test, type TestContext } from "node:test";
import tls from "node:tls";
import vm from "node:vm";
import { rawSocketOf, selfTestNodeInternals } from "../../src/net/index.js";
import { exposedGc, linearRegExp, readIntoScratch, resetOnDestroy } from "../../src/net/node-internals.js";
import { makeCa } from "../certs/fixtures.js";
import { until } from "../support/wait.js";

test("the start-up self-test finds every internal the data path uses working on this Node, and leaves V8's flags off", async () => {
  assert.deepEqual(await selfTestNodeInternals(), []);
  // Any flag left set makes V8 refuse Node's code cache for builtins loaded afterwards.
  assert.throws(() => new RegExp("a", "l"), SyntaxError, "the linear-time engine's flag is off again");
  assert.equal(vm.runInNewContext("typeof gc"), "undefined", "--expose-gc is off again");
});

test("gc() is taken at run time, without --expose-gc at launch, and collects the whole process", async () => {
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, "this test runs without --expose-gc");
  const gc = exposedGc();
  assert.ok(gc !== null);
  const ref = new WeakRef({ payload: new Array(1000).fill(1) });
  await new Promise((r) => setImmediate(r)); // a WeakRef keeps its target until the turn that made it ends
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  assert.equal(ref.deref(), undefined);
});

test("the start-up self-test reports an internal that stopped working", async (t) => {
  // Node's TCP handle loses its reset(): resetOnDestroy cannot arm, and the self-test must say so.
  const { TCP } = (process as unknown as { binding(name: string): { TCP: { prototype: { reset?: unknown } } } }).binding("tcp_wrap");
  const reset = TCP.prototype.reset;
  t.after(() => void (TCP.prototype.reset = reset));
  delete TCP.prototype.reset;
  const problems = await selfTestNodeInternals();
  assert.equal(problems.length, 1, problems.join("; "));
  assert.match(problems[0]!, /no longer sends a TCP reset/);
});

test("the start-up self-test reports a V8 without the linear-time regexp engine", async (t) => {
  const v8 = await import("node:v8");
  linearRegExp("a"); // the engine is switched on at first use; switch it off under the module
  v8.setFlagsFromString("--no-enable-experimental-regexp-engine");
  t.after(() => v8.setFlagsFromString("--enable-experimental-regexp-engine"));
  assert.equal(linearRegExp("^a+$"), undefined, "no pattern compiles without the engine");
  const problems = await selfTestNodeInternals();
  assert.equal(problems.length, 1, problems.join("; "));
  assert.match(problems[0]!, /no linear-time regexp engine/);
});

test("the start-up self-test reports an HTTP parser that no longer stops after a request head", async (t) => {
  // llhttp parses on past the head (as a Node that ignored the head callback's answer would): the
  // HTTP mode could not find where a request's body begins.
  type Parser = { prototype: { execute(this: unknown, b: Buffer): unknown } };
  const { HTTPParser } = process.getBuiltinModule("_http_common") as unknown as { HTTPParser: Parser };
  const execute = HTTPParser.prototype.execute;
  t.after(() => void (HTTPParser.prototype.execute = execute));
  HTTPParser.prototype.execute = function (b: Buffer) {
    const r = execute.call(this, b);
    return typeof r === "number" ? b.length : r;
  };
  const problems = await selfTestNodeInternals();
  assert.equal(problems.length, 1, problems.join("; "));
  assert.match(problems[0]!, /no longer stops after a request head/);
});

/** A TLS server on loopback and a client connected to it; resolves with both ends once handshaken. */
async function tlsPair(t: TestContext): Promise<{ server: tls.TLSSocket; client: tls.TLSSocket; raw: net.Socket }> {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: "web" });
  const srv = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, allowHalfOpen: true });
  const rawSeen = once(srv, "connection") as Promise<[net.Socket]>;
  const secured = once(srv, "secureConnection") as Promise<[tls.TLSSocket]>;
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const client = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: "127.0.0.1", ca: ca.certPem, checkServerIdentity: () => undefined });
  client.on("error", () => {});
  const [[raw], [server]] = await Promise.all([rawSeen, secured, once(client, "secureConnect")]);
  server.on("error", () => {});
  srv.close();
  t.after(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client, raw };
}

/** Two connected TCP sockets on loopback. */
async function tcpPair(t: TestContext): Promise<{ accepted: net.Socket; dialer: net.Socket }> {
  const srv = net.createServer({ allowHalfOpen: true });
  const seen = once(srv, "connection") as Promise<[net.Socket]>;
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const dialer = net.connect({ port: (srv.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
  const [[accepted]] = await Promise.all([seen, once(dialer, "connect")]);
  srv.close();
  t.after(() => {
    dialer.destroy();
    accepted.destroy();
  });
  return { accepted, dialer };
}

/**
 * Reads `sock` with readIntoScratch: checks that the reads land in `scratch` (no 'data' event), that
 * returning false pauses the socket until resume(), and that the end still comes as 'end'.
 */
async function checkScratchReads(sock: net.Socket, writer: net.Socket): Promise<void> {
  const scratch = Buffer.alloc(64 * 1024);
  const got: string[] = [];
  let pauseNext = false;
  let wake: (() => void) | undefined;
  sock.on("data", () => assert.fail("a scratch read must not emit 'data'"));
  const ok = readIntoScratch(sock, scratch, (n, buf) => {
    assert.equal(buf.buffer, scratch.buffer, "the bytes are in the scratch buffer");
    got.push(buf.toString("latin1", 0, n));
    wake?.();
    return !pauseNext;
  });
  assert.equal(ok, true);
  sock.resume();
  const next = (): Promise<void> => new Promise((r) => (wake = r));

  let arrived = next();
  writer.write("one");
  await arrived;
  assert.deepEqual(got, ["one"]);

  // Paused by the callback's false: nothing more is read until resume().
  pauseNext = true;
  arrived = next();
  writer.write("two");
  await arrived;
  pauseNext = false;
  // Loopback delivers "three" within the write; the event loop then polls at least twice before the
  // second immediate runs, and a socket still reading would have had its read callback called.
  await new Promise((r) => writer.write("three", r));
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ["one", "two"], "a paused socket read on");
  arrived = next();
  sock.resume();
  await arrived;
  assert.equal(got.join(""), "onetwothree");

  const ended = once(sock, "end");
  writer.end();
  await ended;
}

test("readIntoScratch: an accepted TCP socket reads into the caller's buffer, pauses on false, still ends", async (t) => {
  const { accepted, dialer } = await tcpPair(t);
  await checkScratchReads(accepted, dialer);
});

test("readIntoScratch: a TLS socket that tls.Server made reads into the caller's buffer, pauses on false, still ends", async (t) => {
  const { server, client } = await tlsPair(t);
  await checkScratchReads(server, client);
});

test("readIntoScratch hands a socket's scratch reads to a new callback, and refuses another buffer or no handle", async (t) => {
  const { accepted, dialer } = await tcpPair(t);
  const scratch = Buffer.alloc(1024);
  const first: string[] = [];
  const second: string[] = [];
  assert.equal(readIntoScratch(accepted, scratch, (n, b) => (first.push(b.toString("latin1", 0, n)), true)), true);
  dialer.write("a");
  await until(() => first.length === 1, "the first callback's read");
  assert.equal(readIntoScratch(accepted, scratch, (n, b) => (second.push(b.toString("latin1", 0, n)), true)), true, "the same buffer: the reads change hands");
  dialer.write("b");
  await until(() => second.length === 1, "the second callback's read");
  assert.deepEqual([first, second], [["a"], ["b"]]);
  assert.equal(readIntoScratch(accepted, Buffer.alloc(1024), () => true), false, "another buffer is refused");
  assert.equal(readIntoScratch(new net.Socket(), scratch, () => true), false);
});

test("rawSocketOf: the TLS socket of tls.Server leads back to the socket its 'connection' event saw", async (t) => {
  const { server, client, raw } = await tlsPair(t);
  assert.equal(rawSocketOf(server), raw);
  assert.equal(rawSocketOf(client), undefined, "a dialled TLS socket wraps no socket of ours");
});

test("resetOnDestroy: destroying the TLS socket then reaches the peer as a TCP reset, not a FIN", async (t) => {
  const { server, client } = await tlsPair(t);
  const how = new Promise<string>((resolve) => {
    client.once("end", () => resolve("FIN"));
    client.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  assert.equal(resetOnDestroy(server), true);
  server.destroy();
  assert.equal(await how, "ECONNRESET");
});
