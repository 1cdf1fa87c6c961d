// One measurement of one path: runs the generator (Node child process or wrk, pinned with the app)
// and turns its answer into figures. Every function records what went wrong in the round's notes
// and leaves the figure null rather than throwing, so one failure never loses the whole run.
import type { ChildHandle, ProcessGroup } from "./children.js";
import { CPU_FIGURE, type CpuRun, type RoundFigures } from "./figures.js";
import { Histogram } from "./histogram.js";
import type { Target } from "./http-conn.js";
import type { BulkResult, ClosedResult, LoadgenJob, OpenResult, RateResult } from "./loadgen.js";
import type { Pinning } from "./machine.js";
import type { Tools } from "./tools.js";
import type { PathId } from "./figures.js";
import { LATER_MS, timeStart, type StartSample, type StartupSubject } from "./startup.js";
import { summarize } from "./stats.js";
import { cpuSince, cpuSnapshot, rssKiB, ussKiB } from "./usage.js";
import { runWrk } from "./wrk.js";

export interface Settings {
  mode: "full" | "quick";
  rounds: number;
  closed: { warmupMs: number; durationMs: number };
  open: { rate: number; conns: number; warmupMs: number; durationMs: number };
  throughputS: number;
  connRateS: number;
  bulkBytes: number;
  idleConns: number;
  settleMs: number;
  /** After the last round: how long the load stays stopped before the "quiet" RSS is read (the sidecar gives memory back after 10 s without traffic). */
  quietMs: number;
  /** The last part of quietMs over which each proxy's idle CPU is read (ours scraped once just before, as Prometheus would). */
  idleCpuMs: number;
  /** Fresh proxy processes started, one after another, for the start-up figures (per path, round 1). */
  startups: number;
}

export interface LivePath {
  id: PathId;
  http: Target;
  bulk: Target;
  /** The proxies whose memory and CPU are the path's (client side and server side); empty for direct. */
  proxies: ChildHandle[];
  /** Every proxy process of the path, each weighed alone for the per-process table (ours: the bulk sidecar too). */
  processes: ChildHandle[];
  /** What the path starts fresh for the start-up figures; none for direct. */
  startup?: StartupSubject;
}

export interface MeasureContext {
  group: ProcessGroup;
  pinning: Pinning;
  tools: Tools;
  loadgenPath: string;
  settings: Settings;
}

const us = (ns: number): number => ns / 1000;

function loadgen<T>(ctx: MeasureContext, job: LoadgenJob, budgetMs: number): Promise<T> {
  return ctx.group.runJson<T>({
    name: `loadgen ${job.mode}`,
    cmd: process.execPath,
    args: [ctx.loadgenPath, JSON.stringify(job)],
    cpus: ctx.pinning.generator,
    timeoutMs: budgetMs + 60_000,
  });
}

async function guarded(round: RoundFigures, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    round.notes.push(`${what} failed: ${err instanceof Error ? err.message.split("\n").slice(0, 6).join(" / ") : String(err)}`);
  }
}

/**
 * Runs a generator between two CPU readings of the path's proxies and records their CPU per
 * request answered. The readings bracket the generator's whole process (start, connect, warm-up),
 * so the divisor counts the warm-up's requests too; the idle moments add only timer work.
 */
async function withCpu<T extends { answered: number }>(p: LivePath, round: RoundFigures, run: CpuRun, fn: () => Promise<T>): Promise<T> {
  if (p.proxies.length === 0) return fn();
  const before = cpuSnapshot(p.proxies.map((c) => c.pid));
  const r = await fn();
  const spent = cpuSince(before);
  if (spent === undefined) round.notes.push(`CPU per request (${run}): cannot read /proc/<pid>/stat`);
  else if (r.answered > 0) {
    round.cpu[run] = { ns: spent.ns, requests: r.answered, source: spent.source };
    round[CPU_FIGURE[run]] = spent.ns / 1000 / r.answered;
    if (spent.source === "stat") round.notes.push(`CPU per request (${run}): from /proc/<pid>/stat ticks (no per-thread schedstat, or a thread exited)`);
  }
  return r;
}

/** Closed loop: p50, p99, p99.9 of one connection's request/response latency. */
export function measureClosed(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  return guarded(round, "closed-loop latency", async () => {
    const { warmupMs, durationMs } = ctx.settings.closed;
    const job: LoadgenJob = { mode: "closed", target: p.http, path: "/", warmupMs, durationMs };
    const r = await withCpu(p, round, "closed", () => loadgen<ClosedResult>(ctx, job, warmupMs + durationMs));
    const h = Histogram.fromJSON(r.hist);
    if (h.total === 0) throw new Error("no request completed");
    round.closedP50Us = us(h.percentile(50));
    round.closedP99Us = us(h.percentile(99));
    round.closedP999Us = us(h.percentile(99.9));
    round.closed = { samples: h.total, errors: r.errors, meanUs: us(h.meanNs()), maxUs: us(h.max) };
    if (r.errors > 0) round.notes.push(`closed loop: ${r.errors} failed requests`);
  });
}

/** Open loop at a constant rate; figures only when the generator held its schedule. */
export function measureOpen(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  return guarded(round, "open-loop latency", async () => {
    const o = ctx.settings.open;
    const r = await loadgen<OpenResult>(
      ctx,
      { mode: "open", target: p.http, path: "/1k", rate: o.rate, conns: o.conns, warmupMs: o.warmupMs, durationMs: o.durationMs },
      o.warmupMs + o.durationMs + 10_000,
    );
    round.open = {
      held: r.held, reason: r.reason, latenessP50Us: us(r.latenessP50Ns), latenessP99Us: us(r.latenessP99Ns),
      sent: r.sent, errors: r.errors, samples: Histogram.fromJSON(r.hist).total,
    };
    if (!r.held) {
      round.notes.push(`open loop: the generator could not hold ${o.rate} req/s (${r.reason}); no open-loop figures`);
      return;
    }
    const h = Histogram.fromJSON(r.hist);
    round.openP50Us = us(h.percentile(50));
    round.openP90Us = us(h.percentile(90));
    round.openP99Us = us(h.percentile(99));
    if (r.errors > 0) round.notes.push(`open loop: ${r.errors} failed requests`);
  });
}

async function rate(ctx: MeasureContext, target: Target, conns: number, seconds: number, close: boolean): Promise<RateResult> {
  if (ctx.tools.wrk) {
    return runWrk(ctx.group, ctx.tools.wrk.path, ctx.pinning.generator, { target, path: "/", conns, durationS: seconds, close });
  }
  const durationMs = seconds * 1000;
  const warmupMs = Math.min(1000, durationMs / 5);
  return loadgen<RateResult>(ctx, { mode: close ? "connrate" : "rate", target, path: "/", conns, durationMs, warmupMs }, durationMs + warmupMs);
}

/** Keep-alive requests/s over `conns` connections. */
export function measureKeepAlive(ctx: MeasureContext, p: LivePath, round: RoundFigures, conns: 16 | 64): Promise<void> {
  return guarded(round, `keep-alive throughput @${conns}`, async () => {
    const r = await withCpu(p, round, conns === 16 ? "rps16" : "rps64", () => rate(ctx, p.http, conns, ctx.settings.throughputS, false));
    if (conns === 16) round.rps16 = r.perSecond;
    else round.rps64 = r.perSecond;
    if (r.errors > 0) round.notes.push(`keep-alive @${conns}: ${r.errors} errors`);
  });
}

/** One request per connection (`Connection: close`) at 16 concurrent clients. */
export function measureNewConns(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  return guarded(round, "new connections/s", async () => {
    const r = await rate(ctx, p.http, 16, ctx.settings.connRateS, true);
    round.newConnsPerS = r.perSecond;
    if (r.errors > 0) round.notes.push(`new connections: ${r.errors} errors`);
    // Nothing completed and nothing failed: every connection was still waiting when the window closed
    // (the path stalled for all of it: a machine too busy to run it, or a pause). Said, not hidden.
    else if (r.perSecond === 0) round.notes.push(`new connections: none completed in the ${ctx.settings.connRateS} s window, and none failed: the path stalled`);
  });
}

/** MB/s over one connection to the sink/source app, in one direction. */
export function measureBulk(ctx: MeasureContext, p: LivePath, round: RoundFigures, direction: "down" | "up"): Promise<void> {
  return guarded(round, `bulk ${direction}`, async () => {
    const r = await loadgen<BulkResult>(ctx, { mode: "bulk", target: p.bulk, direction, bytes: ctx.settings.bulkBytes }, 120_000);
    if (direction === "down") round.bulkDownMBps = r.mbPerSecond;
    else round.bulkUpMBps = r.mbPerSecond;
  });
}

/** RSS of each process by name, and their sum; undefined when one of them cannot be read. */
function rssEach(procs: ChildHandle[]): { each: Map<string, number>; sum: number } | undefined {
  const each = new Map<string, number>();
  for (const c of procs) {
    const kib = rssKiB(c.pid);
    if (kib === undefined) return undefined;
    each.set(c.name, kib);
  }
  return { each, sum: [...each.values()].reduce((a, b) => a + b, 0) };
}

function processFigures(round: RoundFigures, name: string): RoundFigures["perProcess"][string] {
  return (round.perProcess[name] ??= {});
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Idle RSS of the path's proxies after settleMs (the end-of-round figure), and RSS and USS of each process. */
export async function measureIdleRss(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  if (p.proxies.length === 0) return;
  await sleep(ctx.settings.settleMs);
  round.rssAfterRoundKiB = rssEach(p.proxies)?.sum ?? null;
  for (const c of p.processes) {
    const f = processFigures(round, c.name);
    f.rssAfterRoundKiB = rssKiB(c.pid);
    f.ussAfterRoundKiB = ussKiB(c.pid);
  }
}

/**
 * RSS of the path's proxies before and with N idle proxied connections open, then with N more.
 * KiB per connection is the second batch's: the first also pays what a fresh process grows once (the
 * accept and handshake code compiled, a heap regrown after the start-up release): 12–15 KiB per
 * connection of ours, none of haproxy's, in a lab where a third batch cost what the second did.
 */
export function measureMemory(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  if (p.proxies.length === 0) return Promise.resolve();
  return guarded(round, "memory", async () => {
    const holders: ChildHandle[] = [];
    /** Opens one batch of idle connections, held until the step ends; resolves with how many opened. */
    const openBatch = async (batch: number): Promise<number> => {
      const holder = ctx.group.spawn({
        name: `loadgen idle ${batch}`,
        cmd: process.execPath,
        args: [ctx.loadgenPath, JSON.stringify({ mode: "idle", target: p.http, path: "/", conns: ctx.settings.idleConns } satisfies LoadgenJob)],
        cpus: ctx.pinning.generator,
        stdinPipe: true,
      });
      holders.push(holder);
      const opened = await holder.waitFor((line) => {
        if (!line.startsWith("{")) return undefined;
        const v = JSON.parse(line) as { opened?: number; failed?: number };
        return typeof v.opened === "number" ? v : undefined;
      }, 60_000);
      if ((opened.failed ?? 0) > 0) round.notes.push(`memory: ${opened.failed} of ${ctx.settings.idleConns} connections of batch ${batch} failed to open`);
      await sleep(ctx.settings.settleMs);
      return opened.opened ?? 0;
    };
    /** Each process's growth from `then` to `now`, per connection of a batch of `n`. */
    const perConn = (now: Map<string, number>, then: Map<string, number>, n: number): Map<string, number> =>
      new Map(n > 0 ? [...now].map(([name, kib]) => [name, (kib - then.get(name)!) / n]) : []);
    try {
      await sleep(ctx.settings.settleMs);
      const before = rssEach(p.proxies);
      const first = await openBatch(1);
      const withFirst = rssEach(p.proxies);
      const next = await openBatch(2);
      const withNext = rssEach(p.proxies);
      if (before === undefined || withFirst === undefined || withNext === undefined) throw new Error("cannot read /proc/<pid>/status");
      round.rssBeforeConnsKiB = before.sum;
      round.rssWithConnsKiB = withFirst.sum;
      round.idleConnsOpened = first + next;
      round.kibPerConnFirst = first > 0 ? (withFirst.sum - before.sum) / first : null;
      round.kibPerConn = next > 0 ? (withNext.sum - withFirst.sum) / next : null;
      // Each connection passes through both proxies: the targets are per sidecar, so each alone too.
      for (const [name, kib] of perConn(withFirst.each, before.each, first)) processFigures(round, name).kibPerConnFirst = kib;
      for (const [name, kib] of perConn(withNext.each, withFirst.each, next)) processFigures(round, name).kibPerConn = kib;
    } finally {
      // A holder ends its connections when it ends; SIGTERM is as good as closing its stdin here.
      await Promise.all(holders.map((holder) => holder.stop(10_000)));
    }
  });
}

/** Starts Settings.startups fresh proxy processes one after another: ms to ready and memory (medians, extremes). */
export function measureStartup(ctx: MeasureContext, p: LivePath, round: RoundFigures): Promise<void> {
  const subject = p.startup;
  if (subject === undefined) return Promise.resolve();
  return guarded(round, "start-up", async () => {
    const starts: StartSample[] = [];
    round.startup = { what: subject.what, starts };
    for (let i = 0; i < ctx.settings.startups; i++) starts.push(await timeStart(await subject.prepare(), { laterMs: LATER_MS, timeoutMs: 30_000 }));
    const median = (k: keyof StartSample): number | null => summarize(starts.map((x) => x[k]))?.median ?? null;
    const ready = summarize(starts.map((x) => x.readyMs));
    round.startupReadyMs = ready?.median ?? null;
    round.startupReadyMinMs = ready?.min ?? null;
    round.startupReadyMaxMs = ready?.max ?? null;
    round.startupRssReadyKiB = median("rssReadyKiB");
    round.startupRssLaterKiB = median("rssLaterKiB");
    round.startupUssReadyKiB = median("ussReadyKiB");
    round.startupUssLaterKiB = median("ussLaterKiB");
  });
}
