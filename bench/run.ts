// `npm run bench` (full: 3 rounds, ≈ 8–10 min) and `npm run bench -- --quick` (1 round, ≈ 70 s).
// Three paths carry the same traffic to the same tiny app: direct, connect-sidecar (client sidecar
// → mTLS → server sidecar, dev-agent certificates, a real intention check) and haproxy (the same
// certificates). Measurements are interleaved (direct, sidecar, haproxy for each measurement, then
// the next measurement) and repeated; the report gives medians, spread and ratios.
//
//   node dist/bench/run.js [--quick] [--out <dir>] [--rounds <n>] [--no-install]
// Output: <out>/results.md, results.json, latency.svg (default bench/results, quick: bench/results/quick).
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessGroup } from "./harness/children.js";
import { emptyRound, PATH_IDS, PATH_LABELS, summarizePath, summarizeProcess, type PathId, type RoundFigures } from "./harness/figures.js";
import { startHaproxyPair, type HaproxyPair } from "./harness/haproxy.js";
import { allowedCpus, describeMachine, hasTaskset, pinSelf, planPinning, sampleBusyPct } from "./harness/machine.js";
import {
  measureBulk,
  measureClosed,
  measureIdleRss,
  measureKeepAlive,
  measureMemory,
  measureNewConns,
  measureOpen,
  measureStartup,
  type LivePath,
  type MeasureContext,
  type Settings,
} from "./harness/measure.js";
import { BUNDLED_CLI, fetchLeafPems, startAgentWithServices, startMesh, STARTUP_SERVICE, type Mesh } from "./harness/mesh.js";
import { computeRatios, renderMarkdown, writeReport, type BenchResults, type PathResult } from "./harness/report.js";
import { haproxyStartup, sidecarStartup } from "./harness/startup.js";
import { ensureTools } from "./harness/tools.js";
import { cpuSince, cpuSnapshot, mallocOf, rssKiB, ussKiB } from "./harness/usage.js";
import { startApp } from "./harness/setup.js";

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

export const FULL: Settings = {
  mode: "full",
  rounds: 3,
  closed: { warmupMs: 500, durationMs: 5000 },
  open: { rate: 1000, conns: 16, warmupMs: 1000, durationMs: 6000 },
  throughputS: 8,
  connRateS: 8,
  bulkBytes: GIB,
  idleConns: 1000,
  settleMs: 1000,
  quietMs: 25_000,
  idleCpuMs: 10_000,
  startups: 7,
};

export const QUICK: Settings = {
  mode: "quick",
  rounds: 1,
  closed: { warmupMs: 200, durationMs: 1500 },
  open: { rate: 1000, conns: 16, warmupMs: 300, durationMs: 2000 },
  throughputS: 1,
  connRateS: 1,
  bulkBytes: 64 * MIB,
  idleConns: 200,
  settleMs: 300,
  quietMs: 11_000,
  idleCpuMs: 5_000,
  startups: 3,
};

interface Args { quick: boolean; out: string | undefined; rounds: number | undefined; install: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, out: undefined, rounds: undefined, install: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--quick") a.quick = true;
    else if (arg === "--no-install") a.install = false;
    else if (arg === "--out") a.out = argv[++i];
    else if (arg.startsWith("--out=")) a.out = arg.slice(6);
    else if (arg === "--rounds") a.rounds = Number(argv[++i]);
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write("node dist/bench/run.js [--quick] [--out <dir>] [--rounds <n>] [--no-install]\n");
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}; use --quick, --out <dir>, --rounds <n>, --no-install`);
  }
  if (a.out === "") throw new Error("--out needs a directory");
  if (a.rounds !== undefined && !(Number.isInteger(a.rounds) && a.rounds >= 1 && a.rounds <= 20)) throw new Error("--rounds takes 1..20");
  return a;
}

const here = fileURLToPath(new URL(".", import.meta.url)); // dist/bench/
const repoRoot = resolve(here, "..", "..");
const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

function parseAuthzOutput(text: string): { nsPerDecision: number | null; missUsPerDecision: number | null } {
  const hit = /peek \(hit\):\s*([\d.]+)\s*ns/.exec(text) ?? /([\d.]+)\s*ns\/(?:decision|op)/.exec(text);
  const miss = /miss[^:\n]*:\s*([\d.]+)\s*µs/.exec(text);
  return { nsPerDecision: hit ? Number(hit[1]) : null, missUsPerDecision: miss ? Number(miss[1]) : null };
}

async function runAuthzMicro(group: ProcessGroup, cpus: string | undefined, quick: boolean): Promise<BenchResults["authz"]> {
  const script = join(here, "micro", "authz-decide.bench.js");
  if (!existsSync(script)) return { nsPerDecision: null, missUsPerDecision: null, output: "", skipped: `${script} not built` };
  const child = group.spawn({ name: "authz-decide bench", cmd: process.execPath, args: [script, ...(quick ? ["200000"] : [])], cpus });
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), quick ? 30_000 : 120_000);
  const { code, signal } = await child.exited;
  await new Promise<void>((r) => (child.proc.stdout!.readableEnded ? r() : child.proc.once("close", () => r())));
  clearTimeout(timer);
  const output = child.tail();
  if (code !== 0) return { nsPerDecision: null, missUsPerDecision: null, output, skipped: `it failed (${signal ?? `exit ${code}`})` };
  return { ...parseAuthzOutput(output), output, skipped: null };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const base = args.quick ? QUICK : FULL;
  const settings: Settings = { ...base, rounds: args.rounds ?? base.rounds };
  const outDir = resolve(args.out ?? join(repoRoot, "bench", "results", ...(args.quick ? ["quick"] : [])));
  const startedAt = new Date();
  const t0 = Date.now();

  const machine = describeMachine();
  const pinning = planPinning(allowedCpus(), hasTaskset());
  const group = new ProcessGroup({ tasksetAvailable: pinning.generator !== undefined || pinning.proxies !== undefined });
  const tmp = mkdtempSync(join(tmpdir(), "connect-sidecar-bench-"));
  chmodSync(tmp, 0o700);
  const cleanupSync = (): void => {
    group.killAll();
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once("exit", cleanupSync);
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping`);
    cleanupSync();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  // The harness (and its in-process dev agent) stays off the proxies' CPUs.
  pinSelf(pinning.generator);
  log(`${settings.mode} run: ${settings.rounds} round(s); ${machine.cpuModel}, ${machine.cores} cores; node ${machine.node}, openssl ${machine.openssl}; ${pinning.note}`);

  machine.busyPctBefore = (await sampleBusyPct(1000)) ?? null;
  const tools = ensureTools({ install: args.install, installBudgetMs: args.quick ? 45_000 : 240_000 });
  for (const n of tools.notes) log(n);
  const notes: string[] = [];

  const { app, ports: appPorts } = await startApp(group, pinning.app);

  const agentBase = await startAgentWithServices(appPorts);
  const readyTimeoutMs = 45_000;
  const live = new Map<PathId, LivePath>();
  const skipped = new Map<PathId, string>();
  live.set("direct", { id: "direct", http: { host: "127.0.0.1", port: appPorts.http }, bulk: { host: "127.0.0.1", port: appPorts.bulk }, proxies: [], processes: [] });

  let mesh: Mesh | undefined;
  try {
    mesh = await startMesh(
      { group, cliPath: BUNDLED_CLI, cpus: pinning.proxies, app: appPorts, tmpDir: tmp, readyTimeoutMs },
      agentBase,
    );
    const { client, server, bulk } = mesh.sidecars;
    live.set("connect-sidecar", {
      id: "connect-sidecar", http: mesh.http, bulk: mesh.bulk, proxies: [client, server], processes: [client, server, bulk],
      startup: sidecarStartup(mesh, STARTUP_SERVICE),
    });
    // The allocator moves the memory figures (glibc keeps what a busy spell freed): say which one ran.
    notes.push(`connect-sidecar's processes run on ${[client, server, bulk].map((c) => mallocOf(c.pid) ?? "an unknown").join(" / ")} malloc (client / server / bulk sidecar)`);
    log("connect-sidecar path ready");
  } catch (err) {
    skipped.set("connect-sidecar", `the sidecars did not start: ${(err as Error).message.split("\n")[0]}`);
    log(`connect-sidecar path skipped: ${(err as Error).message}`);
  }

  let haproxy: HaproxyPair | undefined;
  if (tools.haproxy === undefined) skipped.set("haproxy", "haproxy is not installed and could not be installed (see notes)");
  else {
    try {
      const clientLeaf = await fetchLeafPems(agentBase.mgmt, "client");
      haproxy = await startHaproxyPair({
        group,
        haproxyPath: tools.haproxy.path,
        cpus: pinning.proxies,
        app: appPorts,
        tmpDir: tmp,
        clientLeaf,
        serverLeaf: await fetchLeafPems(agentBase.mgmt, "server"),
        readyTimeoutMs,
      });
      const proxies = [haproxy.client, haproxy.server];
      live.set("haproxy", { id: "haproxy", http: haproxy.http, bulk: haproxy.bulk, proxies, processes: proxies, startup: haproxyStartup(haproxy, clientLeaf) });
      log("haproxy path ready");
    } catch (err) {
      skipped.set("haproxy", `haproxy did not start: ${(err as Error).message.split("\n")[0]}`);
      log(`haproxy path skipped: ${(err as Error).message}`);
    }
  }

  const atStart = new Map<PathId, Array<{ name: string; pid: number; rssStartKiB: number | null; ussStartKiB: number | null }>>();
  for (const p of live.values()) {
    atStart.set(p.id, p.processes.map((c) => ({ name: c.name, pid: c.pid, rssStartKiB: rssKiB(c.pid) ?? null, ussStartKiB: ussKiB(c.pid) ?? null })));
  }

  const ctx: MeasureContext = { group, pinning, tools, loadgenPath: join(here, "harness", "loadgen.js"), settings };
  const order = PATH_IDS.filter((id) => live.has(id)).map((id) => live.get(id)!);
  const rounds = new Map<PathId, RoundFigures[]>(PATH_IDS.map((id) => [id, []]));
  type Step = { what: string; firstRoundOnly?: boolean; run: (p: LivePath, r: RoundFigures) => Promise<void> };
  const steps: Step[] = [
    { what: "memory with idle connections (fresh processes)", firstRoundOnly: true, run: (p, r) => measureMemory(ctx, p, r) },
    { what: "closed-loop latency", run: (p, r) => measureClosed(ctx, p, r) },
    { what: "open-loop latency", run: (p, r) => measureOpen(ctx, p, r) },
    { what: "keep-alive @16", run: (p, r) => measureKeepAlive(ctx, p, r, 16) },
    { what: "keep-alive @64", run: (p, r) => measureKeepAlive(ctx, p, r, 64) },
    { what: "new connections", run: (p, r) => measureNewConns(ctx, p, r) },
    { what: "bulk down", run: (p, r) => measureBulk(ctx, p, r, "down") },
    { what: "bulk up", run: (p, r) => measureBulk(ctx, p, r, "up") },
    { what: "idle RSS after load", run: (p, r) => measureIdleRss(ctx, p, r) },
    { what: `start-up (${settings.startups} fresh processes per path)`, firstRoundOnly: true, run: (p, r) => measureStartup(ctx, p, r) },
  ];
  for (let i = 0; i < settings.rounds; i++) {
    const figures = new Map<PathId, RoundFigures>(order.map((p) => [p.id, emptyRound()]));
    for (const step of steps) {
      if (step.firstRoundOnly && i > 0) continue;
      log(`round ${i + 1}/${settings.rounds}: ${step.what} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      for (const p of order) await step.run(p, figures.get(p.id)!);
    }
    for (const p of order) {
      rounds.get(p.id)!.push(figures.get(p.id)!);
      for (const n of figures.get(p.id)!.notes) log(`${p.id}: ${n}`);
    }
  }

  // Idle means quiet for a while, not a second after the last byte: the sidecar releases what a busy
  // spell left (idle-memory-release.ts) once no traffic flowed for 10 s. One reading, after the last round.
  // Its last idleCpuMs give each proxy's idle CPU; ours are scraped once before it, as Prometheus would
  // (the first scrape starts the process metrics' event loop sampler).
  log(`quiet after load: ${settings.quietMs / 1000} s without traffic`);
  await new Promise((r) => setTimeout(r, settings.quietMs - settings.idleCpuMs));
  for (const url of mesh?.admins ?? []) await fetch(`${url}/metrics`).then((res) => res.text());
  const procs = order.flatMap((p) => p.processes);
  const idleFrom = new Map(procs.map((c) => [c.name, cpuSnapshot([c.pid])]));
  await new Promise((r) => setTimeout(r, settings.idleCpuMs));
  type Quiet = { rssQuietKiB: number | null; ussQuietKiB: number | null; cpuIdleMsPerS: number | null };
  const quiet = new Map<string, Quiet>();
  for (const c of procs) {
    const spent = cpuSince(idleFrom.get(c.name)!);
    const cpuIdleMsPerS = spent === undefined ? null : spent.ns / 1e6 / (settings.idleCpuMs / 1000);
    quiet.set(c.name, { rssQuietKiB: rssKiB(c.pid) ?? null, ussQuietKiB: ussKiB(c.pid) ?? null, cpuIdleMsPerS });
  }

  log("authorization micro-benchmark");
  const authz = await runAuthzMicro(group, pinning.proxies, args.quick);

  await mesh?.close();
  await haproxy?.close();
  app.proc.stdin?.end();
  await app.stop(3000);
  await agentBase.mgmt.close();
  await agentBase.agent.stop();
  machine.busyPctAfter = (await sampleBusyPct(1000)) ?? null;

  const directRounds = rounds.get("direct")!;
  const paths: PathResult[] = PATH_IDS.map((id) => ({
    id,
    label: PATH_LABELS[id],
    skipped: skipped.get(id) ?? null,
    processes: (atStart.get(id) ?? []).map((x) => ({
      ...x,
      ...summarizeProcess(x.name, rounds.get(id)!),
      ...(quiet.get(x.name) ?? { rssQuietKiB: null, ussQuietKiB: null, cpuIdleMsPerS: null }),
    })),
    rounds: rounds.get(id)!,
    summary: summarizePath(rounds.get(id)!, directRounds),
  }));
  const results: BenchResults = {
    schema: 1,
    mode: settings.mode,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    rounds: settings.rounds,
    machine,
    pinning,
    tools: { haproxy: tools.haproxy?.version ?? null, wrk: tools.wrk?.version ?? null, notes: tools.notes },
    generators: {
      "closed-loop latency": "Node raw-socket client (bench/harness/loadgen.ts), HTTP/1.1 keep-alive, no pipelining, log-linear HDR histogram (≤0.8% error)",
      "open-loop latency": `Node generator, ${settings.open.rate} req/s over ${settings.open.conns} connections from a sleeping ticker thread, latency from each request's intended send time`,
      throughput: tools.wrk ? `wrk -t1 (${tools.wrk.version}), ${settings.throughputS} s per figure` : `Node closed-loop connections (wrk not available), ${settings.throughputS} s per figure`,
      "new connections": tools.wrk ? `wrk -t1 -c16 -H "Connection: close", ${settings.connRateS} s` : `Node: 16 clients, connect + 1 request + close, ${settings.connRateS} s`,
      bulk: `${settings.bulkBytes / MIB} MiB over one connection to a raw TCP sink/source app, each direction`,
      "start-up": `${settings.startups} fresh processes per path, one after another (each stopped before the next), pinned with the proxies; ours: ${live.get("connect-sidecar")?.startup?.what ?? "—"}; haproxy: ${live.get("haproxy")?.startup?.what ?? "—"}`,
      memory: `VmRSS of the path's client-side and server-side proxy: fresh and idle, then with ${settings.idleConns} idle proxied connections (one request each) and with ${settings.idleConns} more, once before any load; and idle at the end of each round; per process also USS (smaps_rollup Private_Clean + Private_Dirty)`,
    },
    settings: {
      rounds: settings.rounds,
      closedWarmupMs: settings.closed.warmupMs,
      closedDurationMs: settings.closed.durationMs,
      openRate: settings.open.rate,
      openConns: settings.open.conns,
      openWarmupMs: settings.open.warmupMs,
      openDurationMs: settings.open.durationMs,
      throughputS: settings.throughputS,
      connRateS: settings.connRateS,
      bulkBytes: settings.bulkBytes,
      idleConns: settings.idleConns,
      startups: settings.startups,
      quietMs: settings.quietMs,
      idleCpuMs: settings.idleCpuMs,
      wallSeconds: Math.round((Date.now() - t0) / 1000),
    },
    paths,
    ratios: computeRatios(paths),
    authz,
    notes,
  };
  const files = writeReport(outDir, results);
  process.stdout.write(renderMarkdown(results));
  log(`wrote ${files.md}, ${files.json}, ${files.svg} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
