// The run's output: results.md (tables with medians, spread and ratios), results.json (every raw
// number) and latency.svg (latency percentiles per path, hand-written SVG).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ALL_METRICS, PATH_IDS, PATH_LABELS, TABLES, type MetricDef, type MetricKey, type PathId, type RoundFigures } from "./figures.js";
import type { Machine, Pinning } from "./machine.js";
import type { Summary } from "./stats.js";

export interface PathResult {
  id: PathId;
  label: string;
  /** Why this path was not measured (tool missing, start-up failed); null when it was. */
  skipped: string | null;
  /**
   * The proxy processes of the path, each alone (KiB): RSS and USS right after start-up; KiB per
   * idle connection, the second batch's and the first's (round 1); RSS and USS idle after load (median over rounds); RSS and USS once the
   * load has been stopped for settings.quietMs, after the last round, and the CPU used per second over its last settings.idleCpuMs.
   */
  processes: Array<{
    name: string; pid: number; rssStartKiB: number | null; ussStartKiB: number | null;
    kibPerConn: number | null; kibPerConnFirst: number | null; rssAfterLoadKiB: number | null; ussAfterLoadKiB: number | null;
    rssQuietKiB: number | null; ussQuietKiB: number | null; cpuIdleMsPerS: number | null;
  }>;
  rounds: RoundFigures[];
  summary: Record<MetricKey, Summary | null>;
}

export interface BenchResults {
  schema: 1;
  mode: "full" | "quick";
  startedAt: string;
  finishedAt: string;
  rounds: number;
  machine: Machine;
  pinning: Pinning;
  tools: { haproxy: string | null; wrk: string | null; notes: string[] };
  /** Which generator produced which figure. */
  generators: Record<string, string>;
  settings: Record<string, number | string>;
  paths: PathResult[];
  /** ours = connect-sidecar; a ratio is of the medians. Null where either side is missing or not positive. */
  ratios: { oursOverHaproxy: Record<MetricKey, number | null>; oursOverDirect: Record<MetricKey, number | null> };
  authz: { nsPerDecision: number | null; missUsPerDecision: number | null; output: string; skipped: string | null };
  notes: string[];
}

export const FILES = { md: "results.md", json: "results.json", svg: "latency.svg" } as const;

/** Computes ours/haproxy and ours/direct for every metric from the medians. */
export function computeRatios(paths: PathResult[]): BenchResults["ratios"] {
  const med = (id: PathId, k: MetricKey): number | undefined => {
    const p = paths.find((x) => x.id === id);
    return p && p.skipped === null ? p.summary[k]?.median : undefined;
  };
  // Only between two positive figures: an "added" latency can come out negative when a tail
  // percentile is noise, and a ratio of that says nothing.
  const ratio = (a: number | undefined, b: number | undefined): number | null =>
    a === undefined || b === undefined || a <= 0 || b <= 0 || !Number.isFinite(a / b) ? null : a / b;
  const oursOverHaproxy = {} as Record<MetricKey, number | null>;
  const oursOverDirect = {} as Record<MetricKey, number | null>;
  for (const m of ALL_METRICS) {
    oursOverHaproxy[m.key] = ratio(med("connect-sidecar", m.key), med("haproxy", m.key));
    oursOverDirect[m.key] = m.key.includes("Added") ? null : ratio(med("connect-sidecar", m.key), med("direct", m.key));
  }
  return { oursOverHaproxy, oursOverDirect };
}

/** Writes the three files into `dir` (created if needed); returns their paths. */
export function writeReport(dir: string, r: BenchResults): { md: string; json: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const files = { md: join(dir, FILES.md), json: join(dir, FILES.json), svg: join(dir, FILES.svg) };
  writeFileSync(files.json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(files.md, renderMarkdown(r));
  writeFileSync(files.svg, renderSvg(r));
  return files;
}

function fmt(v: number, digits: number): string {
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cell(s: Summary | null, m: MetricDef): string {
  if (s === null) return "—";
  const spread = s.spreadPct === null ? "" : ` ±${s.spreadPct < 10 ? s.spreadPct.toFixed(1) : s.spreadPct.toFixed(0)}%`;
  return `${fmt(s.median, m.digits)}${spread}`;
}

function ratioCell(v: number | null): string {
  return v === null ? "—" : `${v.toFixed(2)}×`;
}

/** The Markdown report: machine, one table per metric group (a row per path, then the ratios), notes. */
export function renderMarkdown(r: BenchResults): string {
  const out: string[] = [];
  out.push(`# connect-sidecar benchmark (${r.mode})`, "");
  out.push(
    `${r.finishedAt} · ${r.rounds} round${r.rounds === 1 ? "" : "s"}, paths interleaved (direct, connect-sidecar, haproxy per measurement) · figures are medians over rounds, ±spread = (max − min) / median.`,
    "",
  );
  out.push(`- Machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, Linux ${r.machine.kernel}`);
  out.push(`- Node ${r.machine.node}, OpenSSL ${r.machine.openssl}; haproxy: ${r.tools.haproxy ?? "not available"}; wrk: ${r.tools.wrk ?? "not available"}`);
  out.push(`- Pinning: ${r.pinning.note}`);
  const busy = [r.machine.busyPctBefore, r.machine.busyPctAfter];
  const pct = (v: number | null): string => (v === null ? "—" : `${v.toFixed(0)}%`);
  out.push(
    `- Machine busy (all CPUs) in the second before / after the run: ${pct(busy[0]!)} / ${pct(busy[1]!)}` +
      (busy.some((v) => v !== null && v > 10) ? " — other work shared the machine; expect wide spreads, above all in the tails" : ""),
  );
  for (const [what, how] of Object.entries(r.generators)) out.push(`- ${what}: ${how}`);
  out.push("");
  for (const t of TABLES) {
    out.push(`## ${t.title}`, "", t.note, "");
    out.push(`| path | ${t.metrics.map((m) => m.label).join(" | ")} |`);
    out.push(`|---|${t.metrics.map(() => "---:").join("|")}|`);
    for (const p of r.paths) {
      if (p.skipped !== null) {
        out.push(`| ${p.label} | ${t.metrics.map(() => "skipped").join(" | ")} |`);
        continue;
      }
      out.push(`| ${p.label} | ${t.metrics.map((m) => cell(p.summary[m.key], m)).join(" | ")} |`);
    }
    out.push(`| *ours/haproxy* | ${t.metrics.map((m) => ratioCell(r.ratios.oursOverHaproxy[m.key])).join(" | ")} |`);
    out.push(`| *ours/direct* | ${t.metrics.map((m) => ratioCell(r.ratios.oursOverDirect[m.key])).join(" | ")} |`);
    out.push("");
  }
  out.push("## Authorization hot path", "");
  if (r.authz.skipped !== null) out.push(`Not measured: ${r.authz.skipped}`);
  else {
    out.push(`- \`Authorizer.peek\` cache hit: ${r.authz.nsPerDecision === null ? "—" : `${r.authz.nsPerDecision.toFixed(1)} ns/decision`}`);
    if (r.authz.missUsPerDecision !== null) out.push(`- \`decide\` miss (in-memory agent): ${r.authz.missUsPerDecision.toFixed(2)} µs/decision`);
  }
  out.push("");
  out.push("## Generators", "");
  for (const p of r.paths) {
    if (p.skipped !== null) continue;
    const closed = p.rounds.map((x) => x.closed?.samples).filter((v): v is number => v !== undefined);
    const open = p.rounds.map((x) => x.open).filter((v) => v !== null);
    const late = open.map((o) => `${o.latenessP50Us.toFixed(0)}/${o.latenessP99Us.toFixed(0)}`).join(", ");
    out.push(
      `- ${p.label}: closed loop ${closed.map((n) => fmt(n, 0)).join(", ") || "—"} samples per round; ` +
        `open loop ${open.map((o) => fmt(o.samples, 0)).join(", ") || "—"} samples, generator behind schedule p50/p99 ${late || "—"} µs`,
    );
  }
  out.push("");
  out.push("## Per process", "");
  out.push(
    "Each proxy process alone, KiB. The targets are per sidecar: RSS after start-up ≤ 60 MB, RSS idle after load ≤ 80 MB, " +
      "≤ 25 KiB per idle proxied connection. USS = Private_Clean + Private_Dirty (smaps_rollup): what one more process costs " +
      "where the binary's pages are shared with the others. Per conn: the memory step's connections (they pass the client- " +
      "and server-side proxy, not the bulk sidecar), the second batch's and the first's. After load: 1 s after each round's last run, median over rounds. " +
      `Quiet: once the load has been stopped for ${Math.round(Number(r.settings.quietMs ?? 0) / 1000)} s, after the last round (a sidecar gives back what a busy spell left after 10 s without traffic). ` +
      `CPU idle: ms of CPU per second (every thread's schedstat) over the quiet wait's last ${Math.round(Number(r.settings.idleCpuMs ?? 0) / 1000)} s; ours were scraped (GET /metrics) once just before, as Prometheus would.`,
    "",
  );
  out.push(
    "| process | path | RSS after start-up KiB | USS after start-up KiB | KiB per idle conn | KiB per idle conn, first batch | RSS idle after load KiB | USS idle after load KiB | RSS quiet after load KiB | USS quiet after load KiB | CPU idle ms/s |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const kib = (v: number | null, digits = 0): string => (v === null ? "—" : fmt(v, digits));
  for (const p of r.paths) {
    for (const x of p.processes) {
      out.push(
        `| ${x.name} | ${p.label} | ${kib(x.rssStartKiB)} | ${kib(x.ussStartKiB)} | ${kib(x.kibPerConn, 1)} | ${kib(x.kibPerConnFirst, 1)} | ${kib(x.rssAfterLoadKiB)} | ${kib(x.ussAfterLoadKiB)} | ${kib(x.rssQuietKiB)} | ${kib(x.ussQuietKiB)} | ${kib(x.cpuIdleMsPerS, 2)} |`,
      );
    }
  }
  out.push("");
  const notes = [
    ...r.tools.notes,
    ...r.notes,
    ...r.paths.filter((p) => p.skipped !== null).map((p) => `${p.label} skipped: ${p.skipped}`),
    ...r.paths.flatMap((p) => p.rounds.flatMap((rf, i) => rf.notes.map((n) => `${p.label}, round ${i + 1}: ${n}`))),
  ];
  if (notes.length > 0) {
    out.push("## Notes", "");
    for (const n of notes) out.push(`- ${n.replace(/\n/g, " ")}`);
    out.push("");
  }
  out.push("## Settings", "");
  for (const [k, v] of Object.entries(r.settings)) out.push(`- ${k}: ${v}`);
  out.push("");
  return out.join("\n");
}

const COLORS: Record<PathId, string> = { direct: "#7f8c8d", "connect-sidecar": "#2e86de", haproxy: "#e67e22" };
const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Grouped bars on a log scale: closed-loop p50/p99/p99.9 and open-loop p50/p90/p99 per path. */
export function renderSvg(r: BenchResults): string {
  const groups: Array<{ panel: string; label: string; key: MetricKey }> = [
    { panel: "closed", label: "p50", key: "closedP50Us" },
    { panel: "closed", label: "p99", key: "closedP99Us" },
    { panel: "closed", label: "p99.9", key: "closedP999Us" },
    { panel: "open", label: "p50", key: "openP50Us" },
    { panel: "open", label: "p90", key: "openP90Us" },
    { panel: "open", label: "p99", key: "openP99Us" },
  ];
  const paths = r.paths.filter((p) => p.skipped === null);
  const values = groups.flatMap((g) => paths.map((p) => p.summary[g.key]?.median)).filter((v): v is number => typeof v === "number" && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 10))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 100))));
  const W = 900;
  const H = 420;
  const left = 70;
  const right = 20;
  const top = 60;
  const bottom = 70;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const y = (v: number): number => top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Latency percentiles per path (µs, log scale, median of ${r.rounds} round${r.rounds === 1 ? "" : "s"})</text>`);
  // grid: 1-2-5 per decade
  for (let d = lo; d <= hi; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v < lo || v > hi) continue;
      const yy = y(v).toFixed(1);
      parts.push(`<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="${m === 1 ? "#bbb" : "#e5e5e5"}"/>`);
      parts.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#555">${fmt(v, 0)}</text>`);
    }
  }
  const groupW = plotW / (groups.length + 1); // one slot of gap between the panels
  const barW = Math.min(34, (groupW * 0.8) / Math.max(1, paths.length));
  groups.forEach((g, gi) => {
    const slot = gi + (g.panel === "open" ? 1 : 0);
    const gx = left + slot * groupW + groupW / 2;
    paths.forEach((p, pi) => {
      const v = p.summary[g.key]?.median;
      const x = gx - (paths.length * barW) / 2 + pi * barW;
      if (typeof v !== "number" || v <= 0) {
        parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH - 4}" text-anchor="middle" font-size="9" fill="#999">n/a</text>`);
        return;
      }
      const yy = y(Math.max(v, lo));
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(top + plotH - yy).toFixed(1)}" fill="${COLORS[p.id]}"><title>${esc(`${p.label} ${g.panel}-loop ${g.label}: ${fmt(v, 1)} µs`)}</title></rect>`,
      );
      parts.push(`<text x="${(x + (barW - 3) / 2).toFixed(1)}" y="${(yy - 4).toFixed(1)}" text-anchor="middle" font-size="9">${fmt(v, v < 100 ? 1 : 0)}</text>`);
    });
    parts.push(`<text x="${gx.toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${g.label}</text>`);
  });
  const panelCenter = (from: number, to: number): number => left + ((from + to + 1) / 2) * groupW;
  parts.push(`<text x="${panelCenter(0, 2).toFixed(1)}" y="${top + plotH + 36}" text-anchor="middle" font-weight="bold">closed loop, 1 connection</text>`);
  parts.push(`<text x="${panelCenter(4, 6).toFixed(1)}" y="${top + plotH + 36}" text-anchor="middle" font-weight="bold">open loop, constant rate, 16 connections</text>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  // legend
  PATH_IDS.forEach((id, i) => {
    const p = r.paths.find((x) => x.id === id);
    const lx = left + 10 + i * 170;
    parts.push(`<rect x="${lx}" y="34" width="12" height="12" fill="${COLORS[id]}"/>`);
    parts.push(`<text x="${lx + 18}" y="44">${esc(PATH_LABELS[id])}${p?.skipped ? " (skipped)" : ""}</text>`);
  });
  parts.push(`<text x="${W - right}" y="${H - 8}" text-anchor="end" font-size="10" fill="#777">${esc(`${r.machine.cpuModel}, ${r.machine.cores} cores · node ${r.machine.node} · ${r.finishedAt}`)}</text>`);
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
