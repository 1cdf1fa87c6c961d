// The data-path figures alone, repeated: the same app, dev agent, sidecar children and haproxy pair
// as `bench/run.ts`, pinned the same way, but only the measurements named with --steps, each run
// --reps times with the paths interleaved (sidecar, haproxy), reporting the median of each and the
// ratio of medians. Meant for before/after comparisons of a data-path change on a shared machine.
//
//   node dist/bench/micro/data-path.bench.js [--steps ka16,ka64,conns,down,up,closed] [--reps 3] [--seconds 2]
//        [--bulk-mib 64] [--sidecar-node-options "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--no-haproxy]
//        [--baseline-cli /tmp/base/dist/src/cli.js]   (a second sidecar mesh from another build, "baseline", interleaved)
//        [--hold]   (print targets and pids, then wait for stdin to close before measuring: profile by hand)
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessGroup } from "../harness/children.js";
import { emptyRound, type RoundFigures } from "../harness/figures.js";
import { startHaproxyPair, type HaproxyPair } from "../harness/haproxy.js";
import { allowedCpus, hasTaskset, pinSelf, planPinning } from "../harness/machine.js";
import {
  measureBulk,
  measureClosed,
  measureKeepAlive,
  measureNewConns,
  type LivePath,
  type MeasureContext,
  type Settings,
} from "../harness/measure.js";
import { BUNDLED_CLI, fetchLeafPems, startAgentWithServices, startMesh, type Mesh } from "../harness/mesh.js";
import { ensureTools } from "../harness/tools.js";
import { userSysNs } from "../harness/usage.js";
import { scratchDir, startApp } from "../harness/setup.js";

type StepId = "ka16" | "ka64" | "conns" | "down" | "up" | "closed";
const STEPS: Record<StepId, { key: keyof RoundFigures; run: (ctx: MeasureContext, p: LivePath, r: RoundFigures) => Promise<void> }> = {
  ka16: { key: "rps16", run: (c, p, r) => measureKeepAlive(c, p, r, 16) },
  ka64: { key: "rps64", run: (c, p, r) => measureKeepAlive(c, p, r, 64) },
  conns: { key: "newConnsPerS", run: measureNewConns },
  down: { key: "bulkDownMBps", run: (c, p, r) => measureBulk(c, p, r, "down") },
  up: { key: "bulkUpMBps", run: (c, p, r) => measureBulk(c, p, r, "up") },
  closed: { key: "closedP50Us", run: measureClosed },
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

/** utime and stime of some processes in ms, summed (bench/harness/usage.ts; NaN when one cannot be read). */
function cpuOf(pids: number[]): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    const c = userSysNs(pid);
    user += c === undefined ? NaN : c.userNs / 1e6;
    sys += c === undefined ? NaN : c.sysNs / 1e6;
  }
  return { user, sys };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const here = fileURLToPath(new URL("..", import.meta.url)); // dist/bench/
  const repoRoot = resolve(here, "..", "..");
  const steps = arg("steps", "ka16,ka64,conns,down,up,closed").split(",") as StepId[];
  const reps = Number(arg("reps", "3"));
  const seconds = Number(arg("seconds", "2"));
  const sidecarNodeOptions = arg("sidecar-node-options", "");
  const withHaproxy = !process.argv.includes("--no-haproxy");
  const settings: Settings = {
    mode: "quick", rounds: reps,
    closed: { warmupMs: 200, durationMs: seconds * 1000 },
    open: { rate: 1000, conns: 16, warmupMs: 300, durationMs: 2000 },
    throughputS: seconds, connRateS: seconds,
    bulkBytes: Number(arg("bulk-mib", "64")) * 1024 * 1024,
    idleConns: 0, settleMs: 0, quietMs: 0, idleCpuMs: 0, startups: 0,
  };
  const pinning = planPinning(allowedCpus(), hasTaskset());
  const group = new ProcessGroup({ tasksetAvailable: pinning.generator !== undefined });
  const tmp = scratchDir(group, "data-path-bench-");
  pinSelf(pinning.generator);
  const tools = ensureTools({ install: false, installBudgetMs: 0 });
  const { app, ports: appPorts } = await startApp(group, pinning.app);
  const base = await startAgentWithServices(appPorts);
  const saved = process.env.NODE_OPTIONS;
  if (sidecarNodeOptions !== "") process.env.NODE_OPTIONS = sidecarNodeOptions; // startMesh copies process.env
  let mesh: Mesh;
  try {
    mesh = await startMesh({ group, cliPath: BUNDLED_CLI, cpus: pinning.proxies, app: appPorts, tmpDir: tmp, readyTimeoutMs: 45_000 }, base);
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
  const paths: LivePath[] = [{ id: "connect-sidecar", http: mesh.http, bulk: mesh.bulk, proxies: [], processes: [] }];
  const baselineCli = arg("baseline-cli", "");
  let baseline: Mesh | undefined;
  if (baselineCli !== "") {
    // Its own dev agent: the service names are the same in both meshes.
    baseline = await startMesh({ group, cliPath: baselineCli, cpus: pinning.proxies, app: appPorts, tmpDir: join(tmp, "baseline"), readyTimeoutMs: 45_000 }, await startAgentWithServices(appPorts));
    paths.unshift({ id: "direct", http: baseline.http, bulk: baseline.bulk, proxies: [], processes: [] }); // "direct" is the baseline's slot here
  }
  const pids = new Map<string, number[]>([["connect-sidecar", [mesh.sidecars.client.pid, mesh.sidecars.server.pid, mesh.sidecars.bulk.pid]]]);
  if (baseline !== undefined) pids.set("direct", [baseline.sidecars.client.pid, baseline.sidecars.server.pid, baseline.sidecars.bulk.pid]);
  let haproxy: HaproxyPair | undefined;
  if (withHaproxy && tools.haproxy !== undefined) {
    haproxy = await startHaproxyPair({
      group, haproxyPath: tools.haproxy.path, cpus: pinning.proxies, app: appPorts, tmpDir: tmp,
      clientLeaf: await fetchLeafPems(base.mgmt, "client"), serverLeaf: await fetchLeafPems(base.mgmt, "server"), readyTimeoutMs: 45_000,
    });
    paths.push({ id: "haproxy", http: haproxy.http, bulk: haproxy.bulk, proxies: [], processes: [] });
    pids.set("haproxy", [haproxy.client.pid, haproxy.server.pid]);
  }
  if (process.argv.includes("--hold")) {
    // For profiling by hand: print the targets and pids, keep everything up until stdin closes.
    process.stdout.write(`${JSON.stringify({ paths: paths.map((p) => ({ id: p.id, http: p.http, bulk: p.bulk })), pids: Object.fromEntries(pids) })}\n`);
    process.stdin.resume();
    await new Promise((r) => process.stdin.once("end", r));
  }
  const ctx: MeasureContext = { group, pinning, tools, loadgenPath: join(here, "harness", "loadgen.js"), settings };
  const figures = new Map<string, number[]>();
  const cpu = new Map<string, Array<{ user: number; sys: number }>>();
  for (let i = 0; i < reps; i++) {
    for (const s of steps) {
      for (const p of paths) {
        const r = emptyRound();
        const before = cpuOf(pids.get(p.id)!);
        await STEPS[s].run(ctx, p, r);
        const after = cpuOf(pids.get(p.id)!);
        const v = r[STEPS[s].key] as number | null;
        for (const n of r.notes) process.stderr.write(`[${p.id} ${s}] ${n}\n`);
        if (v === null) continue;
        const k = `${s}\t${p.id}`;
        figures.set(k, [...(figures.get(k) ?? []), v]);
        // CPU µs per unit of work (request, connection, MB) of the path's proxies, user + sys.
        const units = s === "down" || s === "up" ? settings.bulkBytes / 1e6 : s === "closed" ? (seconds * 1e6) / v : v * seconds;
        const user = ((after.user - before.user) * 1000) / units;
        const sys = ((after.sys - before.sys) * 1000) / units;
        cpu.set(k, [...(cpu.get(k) ?? []), { user, sys }]);
      }
    }
  }
  for (const s of steps) {
    const ours = figures.get(`${s}\tconnect-sidecar`) ?? [];
    const theirs = figures.get(`${s}\thaproxy`) ?? [];
    const mo = ours.length > 0 ? median(ours) : NaN;
    const mt = theirs.length > 0 ? median(theirs) : NaN;
    const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(" ");
    process.stdout.write(`${s.padEnd(7)} ours ${mo.toFixed(1).padStart(9)} [${fmt(ours)}]  haproxy ${mt.toFixed(1).padStart(9)} [${fmt(theirs)}]  ratio ${(mo / mt).toFixed(2)}\n`);
    const c = (id: string): string => {
      const xs = cpu.get(`${s}\t${id}`) ?? [];
      if (xs.length === 0) return "-";
      const u = median(xs.map((x) => x.user));
      const y = median(xs.map((x) => x.sys));
      return `${(u + y).toFixed(1)} (usr ${u.toFixed(1)} sys ${y.toFixed(1)})`;
    };
    const unit = s === "down" || s === "up" ? "µs/MB" : s === "conns" ? "µs/conn" : "µs/req";
    process.stdout.write(`        cpu ${unit}: ours ${c("connect-sidecar")}  haproxy ${c("haproxy")}\n`);
    const base = figures.get(`${s}\tdirect`) ?? [];
    if (base.length > 0) {
      const mb = median(base);
      process.stdout.write(`        baseline ${mb.toFixed(1)} [${fmt(base)}] ratio ours/baseline ${(mo / mb).toFixed(2)}, baseline/haproxy ${(mb / mt).toFixed(2)}; cpu ${c("direct")}\n`);
    }
  }
  await mesh.close();
  await baseline?.close();
  await haproxy?.close();
  app.proc.stdin?.end();
  await app.stop(3000);
  await base.mgmt.close();
  await base.agent.stop();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
