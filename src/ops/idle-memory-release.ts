// Gives memory back to the OS once a burst of traffic is over. V8 keeps the pages a busy period
// freed in a pool for reuse and does not return them on its own: after a soak's load stopped, a
// sidecar's heap was 33 MB but 64 MB of V8 pages stayed resident, idle, for good. A "last-resort"
// full GC (what V8 does under memory pressure) releases that pool; it stops the event loop for
// 10–100 ms (70–90 ms in the soak), so it runs only when the process is quiet and has grown since the last release.
// Quiet means no traffic at all for a whole interval, not a low load: at 1,000 req/s a sidecar's event
// loop is busy ~5 % of the time, and a 70 ms pause there is every request's p99.
// (Envoy's overload manager has the same idea: shrink_heap releases tcmalloc's free pages.)
import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { bytesPiped, exposedGc, type FullGc } from "../net/index.js";
import type { Logger } from "./logger.js";

export interface IdleMemoryReleaseOptions {
  /** How often to look. Default 10 s. */
  intervalMs?: number;
  /** Release only when RSS grew by this much since the last release (or start). Default 8 MiB. */
  growthBytes?: number;
  /** "Quiet": the event loop was busy less than this fraction of the interval. Default 0.05. */
  maxUtilization?: number;
  /** A count that moves whenever traffic flows; "quiet" also needs it unchanged for the interval. Default: bytesPiped. */
  activity?: () => number;
  /** The full GC to run. Default: exposedGc() (V8's gc(), taken without --expose-gc at launch); null turns the release off. */
  gc?: FullGc | null;
}

export interface IdleMemoryRelease {
  /**
   * Looks once more after `ms` of quiet, besides the regular interval: for the end of a busy spell
   * the caller knows about (the sidecar calls it at ready: start-up is its busiest spell). With
   * `anyGrowth`, the first quiet look from now on releases however little RSS grew: start-up leaves
   * ~5 MB of garbage and pooled V8 pages, under the growth threshold, that would otherwise stay
   * resident for good (RSS at ready + 3 s 74.2 → 69.8 MiB, bench/README.md).
   */
  checkAfter(ms: number, opts?: { anyGrowth?: boolean }): void;
  close(): void;
}

const MiB = 1024 * 1024;

/** Whether to release now: quiet over the last interval (no traffic, an idle loop), and grown enough since the last release. */
export function shouldRelease(
  s: { utilization: number; trafficFlowed: boolean; rssBytes: number; floorBytes: number },
  o: Pick<Required<IdleMemoryReleaseOptions>, "growthBytes" | "maxUtilization">,
): boolean {
  return !s.trafficFlowed && s.utilization < o.maxUtilization && s.rssBytes > s.floorBytes + o.growthBytes;
}

// process.memoryUsage.rss() reads /proc/self/stat and throws when it cannot open it (EMFILE while a
// connection flood holds every fd): then this look is skipped, never the process ended.
function readRss(): number | undefined {
  try {
    return process.memoryUsage.rss();
  } catch {
    return undefined;
  }
}

/**
 * Starts the release loop. Returns undefined (and logs why at debug) when there is no gc() to run:
 * this V8 gives none at run time (the start-up self-test says so as an error).
 */
export function startIdleMemoryRelease(log: Logger, options: IdleMemoryReleaseOptions = {}): IdleMemoryRelease | undefined {
  const gc = options.gc === undefined ? exposedGc() : options.gc;
  if (gc === null) {
    log.debug("idle memory release is off: V8 gives no gc() to run");
    return undefined;
  }
  const o: Required<Omit<IdleMemoryReleaseOptions, "gc">> = {
    intervalMs: options.intervalMs ?? 10_000,
    growthBytes: options.growthBytes ?? 8 * MiB,
    maxUtilization: options.maxUtilization ?? 0.05,
    activity: options.activity ?? bytesPiped,
  };
  let floorBytes = readRss() ?? 0;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastActivity = o.activity();
  const look = (): void => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, last);
    last = now;
    const activity = o.activity();
    const trafficFlowed = activity !== lastActivity;
    lastActivity = activity;
    const rssBytes = readRss();
    if (rssBytes === undefined || !shouldRelease({ utilization, trafficFlowed, rssBytes, floorBytes }, o)) return;
    const t0 = performance.now();
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    floorBytes = readRss() ?? rssBytes;
    log.info(
      { rssBeforeMiB: Math.round(rssBytes / MiB), rssAfterMiB: Math.round(floorBytes / MiB), pauseMs: Math.round(performance.now() - t0) },
      "released idle memory to the OS",
    );
    // The pause itself must not count as busy time in the next interval.
    last = performance.eventLoopUtilization();
  };
  const timer = setInterval(look, o.intervalMs);
  timer.unref();
  let soon: NodeJS.Timeout | undefined;
  return {
    checkAfter(ms, opts = {}) {
      clearTimeout(soon);
      if (opts.anyGrowth === true) floorBytes = 0; // a release sets the floor again
      last = performance.eventLoopUtilization(); // quiet is judged from now on
      lastActivity = o.activity();
      soon = setTimeout(look, ms);
      soon.unref();
    },
    close() {
      clearInterval(timer);
      clearTimeout(soon);
    },
  };
}
