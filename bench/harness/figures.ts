// The figures one path produces in one round, and the metric catalogue the report is built from.
import type { StartSample } from "./startup.js";
import { summarize, type Summary } from "./stats.js";

export type PathId = "direct" | "connect-sidecar" | "haproxy";
export const PATH_IDS: readonly PathId[] = ["direct", "connect-sidecar", "haproxy"];
export const PATH_LABELS: Record<PathId, string> = {
  direct: "direct",
  "connect-sidecar": "connect-sidecar",
  haproxy: "haproxy",
};

/** Measured in one round on one path; null where the measurement failed, was skipped or has no meaning. */
export interface RoundFigures {
  closedP50Us: number | null;
  closedP99Us: number | null;
  closedP999Us: number | null;
  openP50Us: number | null;
  openP90Us: number | null;
  openP99Us: number | null;
  rps16: number | null;
  rps64: number | null;
  newConnsPerS: number | null;
  bulkDownMBps: number | null;
  bulkUpMBps: number | null;
  /**
   * CPU (user + system, every thread) of the path's two proxy processes, summed, per request
   * answered, in µs: read right before and right after the closed loop and each keep-alive run.
   */
  cpuClosedUsPerReq: number | null;
  cpuRps16UsPerReq: number | null;
  cpuRps64UsPerReq: number | null;
  /** The readings behind the CPU figures: ns on CPU, requests answered, where the ns came from. */
  cpu: Partial<Record<CpuRun, { ns: number; requests: number; source: "schedstat" | "stat" }>>;
  /**
   * Sum over the path's two proxy processes (client side + server side). The idle-connection
   * figures are taken once, in round 1 before any load, on fresh processes: after load, allocator
   * pools and grown heaps would absorb new connections and hide their cost. Two batches, the
   * second opened while the first is held: its growth is what one more live connection costs.
   */
  rssBeforeConnsKiB: number | null;
  /** With the first batch of idle connections open. */
  rssWithConnsKiB: number | null;
  /** KiB per connection of a second batch, opened with the first still open: what one more costs. */
  kibPerConn: number | null;
  /** KiB per connection of the first batch: a fresh process's one-time growth included. */
  kibPerConnFirst: number | null;
  /** Connections opened, both batches. */
  idleConnsOpened: number | null;
  /** Idle RSS at the end of the round, after its load (summed like the others); every round. */
  rssAfterRoundKiB: number | null;
  /**
   * Start-up of fresh proxy processes (round 1 only, Settings.startups of them, one after another):
   * ms from spawn to ready (median, min, max); RSS and USS in KiB when ready and laterMs after (medians).
   */
  startupReadyMs: number | null;
  startupReadyMinMs: number | null;
  startupReadyMaxMs: number | null;
  startupRssReadyKiB: number | null;
  startupRssLaterKiB: number | null;
  startupUssReadyKiB: number | null;
  startupUssLaterKiB: number | null;
  /** Every start, and what was started. */
  startup: { what: string; starts: StartSample[] } | null;
  /**
   * Each proxy process on its own, by name (the targets are per sidecar): KiB per idle connection
   * from the memory step (round 1, the two proxies that carry those connections), RSS and USS idle
   * at the end of the round (every proxy process of the path).
   */
  perProcess: Record<string, { kibPerConn?: number; kibPerConnFirst?: number; rssAfterRoundKiB?: number; ussAfterRoundKiB?: number }>;
  /** Anything odd in this round: errors counted by a generator, an open loop that did not hold its rate. */
  notes: string[];
  /** Closed-loop details: how many requests the percentiles are drawn from. */
  closed: { samples: number; errors: number; meanUs: number; maxUs: number } | null;
  /** Open-loop generator details (how late it sent, whether it held the rate). */
  open: {
    held: boolean; reason: string | undefined; latenessP50Us: number; latenessP99Us: number;
    sent: number; errors: number; samples: number;
  } | null;
}

export function emptyRound(): RoundFigures {
  return {
    closedP50Us: null, closedP99Us: null, closedP999Us: null,
    openP50Us: null, openP90Us: null, openP99Us: null,
    rps16: null, rps64: null, newConnsPerS: null, bulkDownMBps: null, bulkUpMBps: null,
    cpuClosedUsPerReq: null, cpuRps16UsPerReq: null, cpuRps64UsPerReq: null, cpu: {},
    rssBeforeConnsKiB: null, rssWithConnsKiB: null, kibPerConn: null, kibPerConnFirst: null, idleConnsOpened: null,
    rssAfterRoundKiB: null,
    startupReadyMs: null, startupReadyMinMs: null, startupReadyMaxMs: null,
    startupRssReadyKiB: null, startupRssLaterKiB: null, startupUssReadyKiB: null, startupUssLaterKiB: null, startup: null,
    perProcess: {}, notes: [], closed: null, open: null,
  };
}

/** The runs CPU per request is read around, and the figure each one gives. */
export const CPU_FIGURE = { closed: "cpuClosedUsPerReq", rps16: "cpuRps16UsPerReq", rps64: "cpuRps64UsPerReq" } as const;
export type CpuRun = keyof typeof CPU_FIGURE;

/** The figures of a round: its fields that hold a number (or null), not the details beside them. */
type RawKey = { [K in keyof RoundFigures]: RoundFigures[K] extends number | null ? K : never }[keyof RoundFigures];
const ADDED_OF = {
  closedAddedP50Us: "closedP50Us",
  closedAddedP99Us: "closedP99Us",
  closedAddedP999Us: "closedP999Us",
  openAddedP50Us: "openP50Us",
  openAddedP90Us: "openP90Us",
  openAddedP99Us: "openP99Us",
} as const;
export type AddedKey = keyof typeof ADDED_OF;
export type MetricKey = RawKey | AddedKey;

export interface MetricDef { key: MetricKey; label: string; unit: string; better: "lower" | "higher"; digits: number }

/** The report's tables: each lists its metrics, one row per path. */
export const TABLES: Array<{ title: string; note: string; metrics: MetricDef[] }> = [
  {
    title: "Closed-loop latency (1 connection, small response)",
    note: "µs; added = path − direct in the same round.",
    metrics: [
      { key: "closedP50Us", label: "p50", unit: "µs", better: "lower", digits: 1 },
      { key: "closedP99Us", label: "p99", unit: "µs", better: "lower", digits: 1 },
      { key: "closedP999Us", label: "p99.9", unit: "µs", better: "lower", digits: 1 },
      { key: "closedAddedP50Us", label: "added p50", unit: "µs", better: "lower", digits: 1 },
      { key: "closedAddedP99Us", label: "added p99", unit: "µs", better: "lower", digits: 1 },
      { key: "closedAddedP999Us", label: "added p99.9", unit: "µs", better: "lower", digits: 1 },
    ],
  },
  {
    title: "Open-loop latency (constant rate over 16 connections, 1 KiB responses, from intended send time)",
    note: "µs; added = path − direct in the same round.",
    metrics: [
      { key: "openP50Us", label: "p50", unit: "µs", better: "lower", digits: 1 },
      { key: "openP90Us", label: "p90", unit: "µs", better: "lower", digits: 1 },
      { key: "openP99Us", label: "p99", unit: "µs", better: "lower", digits: 1 },
      { key: "openAddedP50Us", label: "added p50", unit: "µs", better: "lower", digits: 1 },
      { key: "openAddedP90Us", label: "added p90", unit: "µs", better: "lower", digits: 1 },
      { key: "openAddedP99Us", label: "added p99", unit: "µs", better: "lower", digits: 1 },
    ],
  },
  {
    title: "Throughput",
    note: "keep-alive requests/s, new connections/s (one request per connection), bulk MB/s (10^6 bytes) over one connection.",
    metrics: [
      { key: "rps16", label: "req/s @16", unit: "req/s", better: "higher", digits: 0 },
      { key: "rps64", label: "req/s @64", unit: "req/s", better: "higher", digits: 0 },
      { key: "newConnsPerS", label: "new conns/s @16", unit: "conn/s", better: "higher", digits: 0 },
      { key: "bulkDownMBps", label: "bulk down MB/s", unit: "MB/s", better: "higher", digits: 0 },
      { key: "bulkUpMBps", label: "bulk up MB/s", unit: "MB/s", better: "higher", digits: 0 },
    ],
  },
  {
    title: "CPU per request (both proxy processes of the path, summed)",
    note:
      "µs of CPU (user + system, every thread: /proc/<pid>/task/*/schedstat) per request answered, read right before and right after the run: " +
      "the closed loop (1 connection) and the keep-alive runs @16 and @64 of the throughput table.",
    metrics: [
      { key: "cpuClosedUsPerReq", label: "µs/req closed loop @1", unit: "µs", better: "lower", digits: 1 },
      { key: "cpuRps16UsPerReq", label: "µs/req keep-alive @16", unit: "µs", better: "lower", digits: 1 },
      { key: "cpuRps64UsPerReq", label: "µs/req keep-alive @64", unit: "µs", better: "lower", digits: 1 },
    ],
  },
  {
    title: "Memory (both proxy processes of the path, summed)",
    note:
      "RSS in KiB. Idle, with idle connections and per connection: once, on fresh processes before any load; after load: idle at the end of each round. " +
      "Two batches of idle connections, the first kept open while the second opens: KiB per conn is the second batch's (what one more connection " +
      "costs), the first batch's also pays what a fresh process grows once (code compiled, heap regrown).",
    metrics: [
      { key: "rssBeforeConnsKiB", label: "RSS idle KiB", unit: "KiB", better: "lower", digits: 0 },
      { key: "rssWithConnsKiB", label: "RSS with idle conns KiB", unit: "KiB", better: "lower", digits: 0 },
      { key: "kibPerConn", label: "KiB per conn", unit: "KiB", better: "lower", digits: 1 },
      { key: "kibPerConnFirst", label: "KiB per conn, first batch", unit: "KiB", better: "lower", digits: 1 },
      { key: "rssAfterRoundKiB", label: "RSS idle after load KiB", unit: "KiB", better: "lower", digits: 0 },
    ],
  },
  {
    title: "Start-up of a fresh proxy process (spawn → ready)",
    note:
      "ms from spawn to ready, median and extremes over the starts: ours, a `-sidecar-for` sidecar of its own service started as the mesh's are, " +
      "at the first 200 of GET /ready (polled every 5 ms); haproxy, a server-side haproxy on new ports, at the first TLS handshake with the " +
      "client leaf. Ours fetches its registration and leaf from the agent; haproxy reads files. One process's RSS and USS (KiB) when ready " +
      "and 2 s later, medians. Target: a sidecar's RSS after start-up ≤ 60 MB.",
    metrics: [
      { key: "startupReadyMs", label: "ready ms", unit: "ms", better: "lower", digits: 1 },
      { key: "startupReadyMinMs", label: "min ms", unit: "ms", better: "lower", digits: 1 },
      { key: "startupReadyMaxMs", label: "max ms", unit: "ms", better: "lower", digits: 1 },
      { key: "startupRssReadyKiB", label: "RSS at ready KiB", unit: "KiB", better: "lower", digits: 0 },
      { key: "startupRssLaterKiB", label: "RSS 2 s later KiB", unit: "KiB", better: "lower", digits: 0 },
      { key: "startupUssReadyKiB", label: "USS at ready KiB", unit: "KiB", better: "lower", digits: 0 },
      { key: "startupUssLaterKiB", label: "USS 2 s later KiB", unit: "KiB", better: "lower", digits: 0 },
    ],
  },
];

export const ALL_METRICS: MetricDef[] = TABLES.flatMap((t) => t.metrics);

/** One figure of one round, including the derived "added over direct" latencies. */
export function figureOf(key: MetricKey, round: RoundFigures, direct: RoundFigures | undefined): number | null {
  if (key in ADDED_OF) {
    const raw = ADDED_OF[key as AddedKey];
    const v = round[raw];
    const d = direct?.[raw];
    return typeof v === "number" && typeof d === "number" ? v - d : null;
  }
  return round[key as RawKey];
}

/** Median and spread of every metric over the rounds. */
export function summarizePath(rounds: RoundFigures[], directRounds: RoundFigures[]): Record<MetricKey, Summary | null> {
  const out = {} as Record<MetricKey, Summary | null>;
  for (const m of ALL_METRICS) out[m.key] = summarize(rounds.map((r, i) => figureOf(m.key, r, directRounds[i])));
  return out;
}

/** One process's per-process figures over the rounds: medians (KiB per connection comes from round 1 alone). */
export function summarizeProcess(
  name: string,
  rounds: RoundFigures[],
): { kibPerConn: number | null; kibPerConnFirst: number | null; rssAfterLoadKiB: number | null; ussAfterLoadKiB: number | null } {
  const median = (k: keyof RoundFigures["perProcess"][string]): number | null => summarize(rounds.map((r) => r.perProcess[name]?.[k]))?.median ?? null;
  return {
    kibPerConn: median("kibPerConn"),
    kibPerConnFirst: median("kibPerConnFirst"),
    rssAfterLoadKiB: median("rssAfterRoundKiB"),
    ussAfterLoadKiB: median("ussAfterRoundKiB"),
  };
}
