// Shared pieces for the listener tests: a cert store fed from the test CA, a scripted authorizer,
// an app that counts its accepts, a log that can be awaited, and a TLS client.
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import type { SpiffeUri } from "../../src/agent/index.js";
import type { Authorizer, Verdict } from "../../src/authz/index.js";
import { createMaterialHolder, type MaterialHolder } from "../../src/certs/index.js";
import { createMetrics, type Metrics } from "../../src/ops/index.js";
import { makeCa, rootsOf, type IssuedLeaf, type TestCa } from "../certs/fixtures.js";
import { captureLog as captureLines, type CapturedLog, type LogLine } from "../support/log-capture.js";

export type { LogLine };

export const SERVICE = "api";

/** The shared captured log (test/support/log-capture.ts), plus the inbound "connection closed" lines. */
export function captureLog(): CapturedLog & { closed(): LogLine[] } {
  const cap = captureLines();
  return { ...cap, closed: () => cap.lines.filter((l) => l.msg === "inbound connection closed") };
}

/** Waits for the connection log line with this reason (and this source, when given). */
export function closedWith(cap: ReturnType<typeof captureLog>, reason: string, source?: string): Promise<LogLine> {
  return cap.next(
    (l) => l.msg === "inbound connection closed" && l.reason === reason && (source === undefined || l.source === source),
    `"inbound connection closed" with reason ${reason}${source === undefined ? "" : ` from ${source}`}`,
  );
}

/** A test CA, our own leaf for SERVICE, and a material holder already holding both. */
export async function makeMesh(log: Logger): Promise<{ ca: TestCa; leaf: IssuedLeaf; store: MaterialHolder; trustDomain: string }> {
  const ca = await makeCa();
  const leaf = await ca.issueLeaf({ service: SERVICE });
  const store = createMaterialHolder({ log, now: Date.now });
  store.setRoots(rootsOf([ca]));
  store.setLeaf(leaf.leaf);
  await store.ready();
  return { ca, leaf, store, trustDomain: ca.trustDomain };
}

/** An authorizer whose verdicts the test sets; a miss asks `decide`, which may be held open. */
export interface FakeAuthz extends Authorizer {
  verdicts: Map<string, Verdict>;
  /** When set, decide() waits for this promise before answering. */
  hold: Promise<void> | undefined;
  decideCalls: number;
  revoke(src: string): void;
}

export function fakeAuthz(initial: Record<string, Verdict> = {}, opts: { cached?: boolean } = {}): FakeAuthz {
  const subs = new Set<(src: SpiffeUri) => void>();
  const self: FakeAuthz = {
    verdicts: new Map(Object.entries(initial)),
    hold: undefined,
    decideCalls: 0,
    peek: (src) => (opts.cached ? self.verdicts.get(src) : undefined),
    async decide(src) {
      self.decideCalls++;
      if (self.hold) await self.hold;
      return self.verdicts.get(src) ?? "denied";
    },
    intentionFor: () => undefined,
    l7Default: () => "deny",
    onRevoke(fn) {
      subs.add(fn);
      return () => void subs.delete(fn);
    },
    size: () => self.verdicts.size,
    close() {},
    revoke(src) {
      self.verdicts.set(src, "denied");
      for (const fn of subs) fn(src as SpiffeUri);
    },
  };
  return self;
}

/** A TCP app on 127.0.0.1: echoes (or greets first), counts accepts, keeps its sockets to close them. */
export interface TestApp {
  server: Server;
  port: number;
  accepts: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startApp(opts: { greeting?: string; onSocket?: (s: Socket) => void; path?: string; host?: string } = {}): Promise<TestApp> {
  const sockets = new Set<Socket>();
  const app: TestApp = {
    server: createServer({ allowHalfOpen: true }, (s) => {
      app.accepts++;
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
      if (opts.onSocket) return opts.onSocket(s);
      if (opts.greeting !== undefined) s.write(opts.greeting);
      s.pipe(s); // echo, and end when the client ends
    }),
    port: 0,
    accepts: 0,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => app.server.close(() => resolve()));
    },
  };
  if (opts.path !== undefined) app.server.listen(opts.path);
  else app.server.listen(0, opts.host ?? "127.0.0.1");
  await once(app.server, "listening");
  const a = app.server.address();
  app.port = typeof a === "object" && a !== null ? a.port : 0;
  return app;
}

/** Metrics on a fresh registry, without process metrics. */
export function testMetrics(): Metrics {
  return createMetrics(new Registry(), { processMetrics: false });
}

/** Value of a counter or gauge for these labels (0 when never set). */
export async function metricValue(metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> | { values: Array<{ value: number; labels: Record<string, unknown> }> } }, labels: Record<string, string>): Promise<number> {
  const data = await metric.get();
  const hit = data.values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return hit?.value ?? 0;
}

/** accepted_total − Σ closed_total − active for the public listener: 0 whenever the books balance. */
export async function imbalance(m: Metrics): Promise<number> {
  const accepted = await metricValue(m.connectionsAccepted, { listener: "public" });
  const active = await metricValue(m.connectionsActive, { listener: "public" });
  const closed = (await m.connectionsClosed.get()).values
    .filter((v) => v.labels.listener === "public")
    .reduce((sum, v) => sum + v.value, 0);
  return accepted - closed - active;
}

/** A TLS client to the listener. Resolves once the client side of the handshake is done. */
export async function dial(port: number, creds: { certPem: string; keyPem: string } | undefined, caPems: string[]): Promise<TLSSocket> {
  const sock = tlsConnect({
    host: "127.0.0.1",
    port,
    ...(creds ? { cert: creds.certPem, key: creds.keyPem } : {}),
    ca: caPems,
    // Connect certificates carry a URI SAN and no DNS name; the identity is not what these tests check.
    checkServerIdentity: () => undefined,
  });
  sock.on("error", () => {});
  await once(sock, "secureConnect");
  return sock;
}

/** Writes `data`, ends, and collects everything the other side sends until it ends. */
export async function roundTrip(sock: TLSSocket, data: Buffer | string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  const ended = once(sock, "end");
  sock.end(data);
  await ended;
  return Buffer.concat(chunks);
}

/** Sends `text` and resolves with the first `text.length` bytes echoed back. */
export async function echo(sock: TLSSocket, text: string): Promise<string> {
  let got = "";
  const done = new Promise<string>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length >= text.length) {
        sock.off("data", onData).off("close", onClose);
        resolve(got);
      }
    };
    const onClose = (): void => reject(new Error(`closed after ${JSON.stringify(got)}`));
    sock.on("data", onData).on("close", onClose);
  });
  sock.write(text);
  return done;
}

export { closed } from "../sockets.js";
