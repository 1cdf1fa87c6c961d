// Start-up of a fresh proxy process: the time from spawn until it can serve, and its memory then and
// a little later. Ours is a `-sidecar-for` sidecar of a service of its own, spawned as the mesh spawns
// its sidecars, ready at the first 200 of GET /ready; haproxy is a fresh server-side haproxy, ready
// when its TLS frontend completes a handshake with the client leaf. Ours also fetches its
// registration and leaf from the agent first; haproxy reads its certificates from files.
import { get } from "node:http";
import { performance } from "node:perf_hooks";
import { connect } from "node:tls";
import type { ChildHandle } from "./children.js";
import type { Target } from "./http-conn.js";
import type { LeafPems, Mesh } from "./mesh.js";
import type { HaproxyPair } from "./haproxy.js";
import { rssKiB, ussKiB } from "./usage.js";

/** One fresh process, ready to launch: `probe` resolves true once it serves (never throws). */
export interface Launchable { launch(): ChildHandle; probe(): Promise<boolean> }

/** What a path starts fresh for the start-up figures, and how it knows the process is ready. */
export interface StartupSubject { what: string; prepare(): Promise<Launchable> }

/** One start: ms from spawn to ready; memory (KiB) when ready and `laterMs` after. */
export interface StartSample {
  readyMs: number;
  rssReadyKiB: number | null; ussReadyKiB: number | null;
  rssLaterKiB: number | null; ussLaterKiB: number | null;
}

/** Memory is read when the process is ready and again this long after. */
export const LATER_MS = 2000;

/** Polls every 5 ms; a poll that hangs (a process busy starting) gives up after 250 ms. */
const POLL_MS = 5;
const PROBE_TIMEOUT_MS = 250;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when GET `path` answers 200 (one fresh connection each time). */
function http200(t: Target, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get({ host: t.host, port: t.port, path, agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("timeout", () => req.destroy(new Error("timed out")));
    req.once("error", () => resolve(false));
  });
}

/** True when a TLS handshake with `leaf` (the chain checked against its roots) completes on `t`. */
function tlsHandshake(t: Target, leaf: LeafPems): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({
      host: t.host, port: t.port, cert: leaf.certPem, key: leaf.keyPem, ca: leaf.caPem,
      // Connect leaves name a SPIFFE ID, not a host: the chain is verified, the name is not.
      checkServerIdentity: () => undefined,
    });
    const timer = setTimeout(() => sock.destroy(), PROBE_TIMEOUT_MS);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    sock.once("secureConnect", () => done(sock.authorized));
    sock.once("error", () => done(false));
    sock.once("close", () => done(false));
  });
}

export function sidecarStartup(mesh: Mesh, service: string): StartupSubject {
  return {
    what: `\`proxy -sidecar-for ${service}\` as the mesh's sidecars, until GET /ready answers 200`,
    prepare: async () => {
      const s = await mesh.prepareSidecar(service);
      return { launch: s.launch, probe: () => http200(s.admin, "/ready") };
    },
  };
}

export function haproxyStartup(pair: HaproxyPair, clientLeaf: LeafPems): StartupSubject {
  return {
    what: "a server-side haproxy with the pair's config on new ports, until its frontend completes a TLS handshake with the client leaf",
    prepare: async () => {
      const s = await pair.prepareServer();
      return { launch: s.launch, probe: () => tlsHandshake(s.tls, clientLeaf) };
    },
  };
}

/**
 * Launches one fresh process, times it from spawn to its first successful probe, reads its memory
 * then and `laterMs` after, and stops it (SIGTERM, waiting for the exit) before resolving.
 */
export async function timeStart(l: Launchable, o: { laterMs: number; timeoutMs: number }): Promise<StartSample> {
  const t0 = performance.now();
  const child = l.launch();
  try {
    while (!(await l.probe())) {
      if (child.proc.exitCode !== null || child.proc.signalCode !== null) throw new Error(`${child.name} exited before it was ready; its last lines:\n${child.tail()}`);
      if (performance.now() - t0 > o.timeoutMs) throw new Error(`${child.name} not ready within ${o.timeoutMs} ms; its last lines:\n${child.tail()}`);
      await sleep(POLL_MS);
    }
    const readyMs = performance.now() - t0;
    const rssReadyKiB = rssKiB(child.pid) ?? null;
    const ussReadyKiB = ussKiB(child.pid) ?? null;
    await sleep(o.laterMs);
    return { readyMs, rssReadyKiB, ussReadyKiB, rssLaterKiB: rssKiB(child.pid) ?? null, ussLaterKiB: ussKiB(child.pid) ?? null };
  } finally {
    await child.stop(10_000);
  }
}
