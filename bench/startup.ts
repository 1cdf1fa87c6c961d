// Start-up and idle footprint of one sidecar: `node dist/bench/startup.js [--runs 5] [--cli <other cli.js>]… [--idle-ms 10000 [--scrape]]`
// (not part of CI). The in-process dev agent holds `web` with a sidecar registration (one upstream);
// each run spawns `node <cli.js> proxy -sidecar-for web` as a user would and reports, median of the
// runs: spawn → first 200 from /ready (polled every 2 ms), the process's CPU at that moment (both
// Node boots included: execve keeps the PID and its CPU time), and its RSS split into anonymous and
// file-backed pages (/proc/<pid>/smaps_rollup) --settle-ms after ready. Several --cli are interleaved
// run by run and compared with the first, so a shared machine's load hits them alike. With --idle-ms,
// also the idle sidecar's CPU per second (--scrape: after one GET /metrics, as under Prometheus).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { createAgentClient, registerService, resolveAgentConfig } from "../src/agent/index.js";
import { startDevAgent } from "../src/dev-agent/index.js";
import { pickFreePort as freePort } from "../src/net/index.js";
import { cpuSince, cpuSnapshot, processCpuNs } from "./harness/usage.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "settle-ms": { type: "string", default: "3000" },
    // Builds to compare (their dist/bundle/cli.js, or dist/src/cli.js unbundled); this build's bundle when none is given.
    cli: { type: "string", multiple: true },
    // More arguments for every proxy, e.g. --args="-checklist-interval 0".
    args: { type: "string", default: "" },
    // After the RSS reading: CPU per second of the idle sidecar over this many ms (0: not measured),
    // the first --idle-delay-ms after a GET /metrics as a Prometheus scrape would make (--scrape).
    "idle-ms": { type: "string", default: "0" },
    "idle-delay-ms": { type: "string", default: "10000" },
    scrape: { type: "boolean", default: false },
  },
});
const clis = values.cli ?? [fileURLToPath(new URL("../bundle/cli.js", import.meta.url))];
const runs = Number(values.runs);
const settleMs = Number(values["settle-ms"]);
const extraArgs = values.args.split(/\s+/).filter((a) => a !== "");
const idleMs = Number(values["idle-ms"]);
const idleDelayMs = Number(values["idle-delay-ms"]);
const MiB = 1024 * 1024;

interface Sample { readyMs: number; cpuMs: number; rssMiB: number; anonMiB: number; fileMiB: number; idleCpuMsPerS: number }

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

/**
 * CPU of `pid` in ms so far. execve keeps the main thread, so the first Node boot is in it; the few ms
 * its helper threads ran before execve ended them are not.
 */
function cpuMs(pid: number): number {
  const ns = processCpuNs(pid);
  if (ns === undefined) throw new Error(`cannot read the CPU time of ${pid}`);
  return ns / 1e6;
}

function footprint(pid: number): Pick<Sample, "rssMiB" | "anonMiB" | "fileMiB"> {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)![1]);
  const rss = kib("Rss") * 1024;
  const anon = kib("Anonymous") * 1024;
  return { rssMiB: rss / MiB, anonMiB: anon / MiB, fileMiB: (rss - anon) / MiB };
}

async function runOnce(cli: string, agentAddr: string, adminPort: number): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [cli, "proxy", "-sidecar-for", "web", "-http-addr", agentAddr, "-metrics-addr", `127.0.0.1:${adminPort}`, ...extraArgs], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = once(child, "exit");
  try {
    for (;;) {
      if ((await status(adminPort, "/ready")) === 200) break;
      if (child.exitCode !== null) throw new Error(`${cli} exited ${child.exitCode} before it was ready`);
      await sleep(2);
    }
    const readyMs = performance.now() - t0;
    const cpu = cpuMs(child.pid!);
    await sleep(settleMs);
    const memory = footprint(child.pid!);
    let idleCpuMsPerS = Number.NaN;
    if (idleMs > 0) {
      if (values.scrape && (await status(adminPort, "/metrics")) !== 200) throw new Error(`${cli}: GET /metrics failed`);
      await sleep(idleDelayMs);
      const before = cpuSnapshot([child.pid!]);
      await sleep(idleMs);
      const spent = cpuSince(before);
      if (spent === undefined) throw new Error(`${cli}: cannot read its CPU time`);
      idleCpuMsPerS = spent.ns / 1e6 / (idleMs / 1000);
    }
    return { readyMs, cpuMs: cpu, ...memory, idleCpuMsPerS };
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const quiet = pino({ level: "silent" });
const dev = await startDevAgent({ log: quiet });
const mgmt = createAgentClient(resolveAgentConfig({ httpAddr: dev.address, token: dev.managementToken }, {}), { log: quiet });
try {
  const [appPort, sidecarPort, upstreamPort, adminPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  await registerService(mgmt, {
    Name: "web", ID: "web", Address: "127.0.0.1", Port: appPort,
    Connect: { SidecarService: { Port: sidecarPort, Proxy: { Upstreams: [{ DestinationName: "web", LocalBindPort: upstreamPort }] } } },
  });
  const samples: Sample[][] = clis.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (const [i, cli] of clis.entries()) samples[i]!.push(await runOnce(cli, dev.address, adminPort));
  }
  const idleHead = idleMs > 0 ? ` idle CPU ms/s${values.scrape ? " (scraped)" : ""} |` : "";
  console.log(`| cli | spawn → /ready 200 (ms) | CPU to ready (ms) | RSS at ready + ${settleMs} ms (MiB) | anon | file-backed |${idleHead}`);
  console.log(`|---|---:|---:|---:|---:|---:|${idleMs > 0 ? "---:|" : ""}`);
  const base = samples[0]!;
  for (const [i, s] of samples.entries()) {
    const cell = (k: keyof Sample, digits: number) => {
      const m = median(s.map((x) => x[k]));
      return i === 0 ? m.toFixed(digits) : `${m.toFixed(digits)} (${(m / median(base.map((x) => x[k]))).toFixed(2)}×)`;
    };
    const idle = idleMs > 0 ? ` ${cell("idleCpuMsPerS", 2)} |` : "";
    console.log(`| ${clis[i]} | ${cell("readyMs", 0)} | ${cell("cpuMs", 0)} | ${cell("rssMiB", 1)} | ${cell("anonMiB", 1)} | ${cell("fileMiB", 1)} |${idle}`);
  }
  console.log(`\nmedians of ${runs} runs each, interleaved; node ${process.versions.node}`);
} finally {
  await mgmt.close();
  await dev.stop();
}
