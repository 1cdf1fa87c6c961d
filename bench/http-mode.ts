// HTTP mode beside layer 4 (issue 16), one run: our sidecar pair with the server's protocol tcp, then
// http (switched live with a service-defaults entry, as users do), and the haproxy pair in `mode tcp`
// and `mode http`. Same app, generators, pinning and CPU accounting as bench/run.ts; the paths are
// interleaved per measurement and round. Prints a markdown table; writes nothing.
// The server's protocol reaches the client's upstream too (the agent resolves it into the upstream's
// Config), so in http both sidecars parse; `--upstream-tcp` pins the client's upstream to tcp in its
// registration, so that only the server's sidecar parses (as before the upstream side parsed).
//   node dist/bench/http-mode.js [--quick] [--rounds <n>] [--upstream-tcp]
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessGroup } from "./harness/children.js";
import { emptyRound, type RoundFigures } from "./harness/figures.js";
import { startHaproxyPair, type HaproxyPair } from "./harness/haproxy.js";
import { allowedCpus, describeMachine, hasTaskset, pinSelf, planPinning } from "./harness/machine.js";
import { measureClosed, measureKeepAlive, type LivePath, type MeasureContext, type Settings } from "./harness/measure.js";
import { BUNDLED_CLI, fetchLeafPems, startAgentWithServices, startMesh, type Mesh } from "./harness/mesh.js";
import { ensureTools } from "./harness/tools.js";
import { scratchDir, startApp } from "./harness/setup.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = resolve(here, "..", "..");
const log = (line: string): void => void process.stderr.write(`[bench:http] ${line}\n`);

type PathName = "ours tcp" | "ours http" | "haproxy tcp" | "haproxy http";
interface Path {
  name: PathName;
  live: LivePath;
  /** Ours: switch the server's protocol before measuring (new connections take it). */
  before?: () => Promise<void>;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const ri = argv.indexOf("--rounds");
  // Only the closed loop and keep-alive figures are measured here (run.ts's other settings are unused).
  const settings: Settings = {
    mode: quick ? "quick" : "full",
    rounds: 1,
    closed: quick ? { warmupMs: 200, durationMs: 1500 } : { warmupMs: 500, durationMs: 5000 },
    open: { rate: 1000, conns: 16, warmupMs: 0, durationMs: 0 },
    throughputS: quick ? 2 : 8,
    connRateS: 1,
    bulkBytes: 0,
    idleConns: 0,
    settleMs: 0,
    quietMs: 0,
    idleCpuMs: 0,
    startups: 0,
  };
  const rounds = ri >= 0 ? Number(argv[ri + 1]) : quick ? 1 : 3;
  const machine = describeMachine();
  const pinning = planPinning(allowedCpus(), hasTaskset());
  const group = new ProcessGroup({ tasksetAvailable: pinning.generator !== undefined || pinning.proxies !== undefined });
  const tmp = scratchDir(group, "connect-sidecar-bench-http-");
  pinSelf(pinning.generator);
  const tools = ensureTools({ install: true, installBudgetMs: 120_000 });
  if (tools.haproxy === undefined) throw new Error(`haproxy is needed: ${tools.notes.join("; ")}`);
  log(`${rounds} round(s); ${machine.cpuModel}, ${machine.cores} cores; node ${machine.node}; ${tools.haproxy.version}; ${pinning.note}`);

  const { app, ports: appPorts } = await startApp(group, pinning.app);
  const upstreamTcp = argv.includes("--upstream-tcp");
  const agentBase = await startAgentWithServices(appPorts, upstreamTcp ? { serverUpstreamConfig: { protocol: "tcp" } } : {});
  const readyTimeoutMs = 45_000;
  const mesh: Mesh = await startMesh({ group, cliPath: BUNDLED_CLI, cpus: pinning.proxies, app: appPorts, tmpDir: tmp, readyTimeoutMs }, agentBase);
  const pairs: HaproxyPair[] = [];
  for (const mode of ["tcp", "http"] as const) {
    pairs.push(
      await startHaproxyPair({
        group,
        haproxyPath: tools.haproxy.path,
        cpus: pinning.proxies,
        app: appPorts,
        tmpDir: tmp,
        clientLeaf: await fetchLeafPems(agentBase.mgmt, "client"),
        serverLeaf: await fetchLeafPems(agentBase.mgmt, "server"),
        readyTimeoutMs,
        mode,
      }),
    );
  }
  const { client, server } = mesh.sidecars;
  const ours: LivePath = { id: "connect-sidecar", http: mesh.http, bulk: mesh.bulk, proxies: [client, server], processes: [client, server] };
  let current: "tcp" | "http" = "tcp";
  /** PUT service-defaults server Protocol=<p>, then wait for the server sidecar to say new connections take it. */
  const protocol = (p: "tcp" | "http") => async (): Promise<void> => {
    if (current === p) return;
    const applied = server.waitFor((l) => (l.includes("public listener settings updated") && l.includes(`"protocol":"${p}"`) ? true : undefined), 20_000);
    await agentBase.mgmt.request({ method: "PUT", path: "/v1/config", body: { Kind: "service-defaults", Name: "server", Protocol: p } });
    await applied;
    current = p;
  };
  const haproxyPath = (h: HaproxyPair): LivePath => ({ id: "haproxy", http: h.http, bulk: h.bulk, proxies: [h.client, h.server], processes: [h.client, h.server] });
  const paths: Path[] = [
    { name: "ours tcp", live: ours, before: protocol("tcp") },
    { name: "ours http", live: ours, before: protocol("http") },
    { name: "haproxy tcp", live: haproxyPath(pairs[0]!) },
    { name: "haproxy http", live: haproxyPath(pairs[1]!) },
  ];
  const ctx: MeasureContext = { group, pinning, tools, loadgenPath: join(here, "harness", "loadgen.js"), settings };
  const figures = new Map<PathName, RoundFigures[]>(paths.map((p) => [p.name, []]));
  for (let i = 0; i < rounds; i++) {
    const round = new Map<PathName, RoundFigures>(paths.map((p) => [p.name, emptyRound()]));
    for (const step of [(p: LivePath, r: RoundFigures) => measureClosed(ctx, p, r), (p: LivePath, r: RoundFigures) => measureKeepAlive(ctx, p, r, 16)]) {
      for (const p of paths) {
        await p.before?.();
        await step(p.live, round.get(p.name)!);
      }
    }
    for (const p of paths) {
      figures.get(p.name)!.push(round.get(p.name)!);
      for (const n of round.get(p.name)!.notes) log(`${p.name}: ${n}`);
    }
    log(`round ${i + 1}/${rounds} done`);
  }
  await mesh.close();
  for (const h of pairs) await h.close();
  app.proc.stdin?.end();
  await app.stop(3000);
  await agentBase.mgmt.close();
  await agentBase.agent.stop();

  const median = (xs: Array<number | null | undefined>): number | null => {
    const v = xs.filter((x): x is number => typeof x === "number").sort((a, b) => a - b);
    return v.length === 0 ? null : v[Math.floor(v.length / 2)]!;
  };
  const cols: Array<[string, (r: RoundFigures) => number | null | undefined, number]> = [
    ["closed-loop p50 µs", (r) => r.closedP50Us, 0],
    ["closed-loop p99 µs", (r) => r.closedP99Us, 0],
    ["keep-alive req/s @16", (r) => r.rps16, 0],
    ["CPU µs/req closed loop", (r) => r.cpuClosedUsPerReq, 1],
    ["CPU µs/req @16", (r) => r.cpuRps16UsPerReq, 1],
  ];
  const parsing = upstreamTcp ? "in http only the server's sidecar parses" : "in http both sidecars parse";
  const out = [`HTTP mode vs layer 4 (${parsing}), ${rounds} round(s), medians; ${machine.cores} cores, node ${machine.node}, ${tools.haproxy.version}`, ""];
  out.push(`| path | ${cols.map((c) => c[0]).join(" | ")} |`, `|---|${cols.map(() => "---:").join("|")}|`);
  for (const p of paths) {
    const rs = figures.get(p.name)!;
    out.push(`| ${p.name} | ${cols.map(([, f, d]) => median(rs.map(f))?.toFixed(d) ?? "—").join(" | ")} |`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main().then(
  () => setTimeout(() => process.exit(0), 500).unref(),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
