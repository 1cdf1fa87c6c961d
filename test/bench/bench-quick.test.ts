// CI's smoke test of the benchmark harness: `node dist/bench/run.js --quick --out <tmp>` runs as a
// child process and must leave results.md, results.json and latency.svg with a row per path and
// numbers in every figure it measured. No timing is asserted: only that the harness works. haproxy
// and wrk may be missing (then the haproxy column is skipped with a reason, and the Node generators
// stand in for wrk).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { BenchResults } from "../../bench/harness/report.js";
import type { RoundFigures } from "../../bench/harness/figures.js";

const RUN_JS = fileURLToPath(new URL("../../bench/run.js", import.meta.url));
const PATHS = ["direct", "connect-sidecar", "haproxy"] as const;
const LATENCY_AND_RATES: Array<keyof RoundFigures> = [
  "closedP50Us", "closedP99Us", "closedP999Us", "rps16", "rps64", "newConnsPerS", "bulkDownMBps", "bulkUpMBps",
];
const OPEN: Array<keyof RoundFigures> = ["openP50Us", "openP90Us", "openP99Us"];
const CPU: Array<keyof RoundFigures> = ["cpuClosedUsPerReq", "cpuRps16UsPerReq", "cpuRps64UsPerReq"];
const STARTUP: Array<keyof RoundFigures> = [
  "startupReadyMs", "startupReadyMinMs", "startupReadyMaxMs",
  "startupRssReadyKiB", "startupRssLaterKiB", "startupUssReadyKiB", "startupUssLaterKiB",
];
const MEMORY: Array<keyof RoundFigures> = ["rssBeforeConnsKiB", "rssWithConnsKiB", "kibPerConn", "kibPerConnFirst", "idleConnsOpened", "rssAfterRoundKiB"];

function runQuick(outDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, "--quick", "--out", outDir], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => void (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (output += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

test("the quick benchmark writes md, json and svg with a row and figures for every path", { timeout: 150_000 }, async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), "bench-quick-"));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));

  const { code, output } = await runQuick(outDir);
  assert.equal(code, 0, `run.js --quick failed:\n${output.slice(-4000)}`);

  const results = JSON.parse(readFileSync(join(outDir, "results.json"), "utf8")) as BenchResults;
  assert.equal(results.mode, "quick");
  assert.equal(results.rounds, 1);
  assert.deepEqual(results.paths.map((p) => p.id), [...PATHS]);
  assert.equal(typeof results.machine.cpuModel, "string");
  assert.ok(results.machine.cores >= 1);
  assert.match(results.machine.node, /^\d+\.\d+\.\d+/);
  assert.equal(typeof results.machine.openssl, "string");

  for (const p of results.paths) {
    if (p.skipped !== null) {
      // Only haproxy may be missing (tool not installable); a skip always says why.
      assert.equal(p.id, "haproxy", `${p.id} was skipped: ${p.skipped}`);
      assert.ok(p.skipped.length > 0);
      continue;
    }
    assert.equal(p.rounds.length, 1, `${p.id} has one round`);
    const round = p.rounds[0]!;
    const why = `${p.id}: ${round.notes.join(" | ")}`;
    for (const k of LATENCY_AND_RATES) {
      assert.equal(typeof round[k], "number", `${p.id}.${k} is a number (${why})`);
      // A one-second window on a machine too busy to run the path completes nothing; then it says so.
      if (k === "newConnsPerS" && round[k] === 0 && round.notes.some((n) => n.startsWith("new connections: none completed"))) continue;
      assert.ok(Number.isFinite(round[k] as number) && (round[k] as number) > 0, `${p.id}.${k} > 0 (${why})`);
    }
    // The open loop reports nothing when the generator could not hold its rate, and then says so.
    assert.ok(round.open !== null, `${p.id} ran the open loop (${why})`);
    for (const k of OPEN) {
      if (round.open.held) assert.equal(typeof round[k], "number", `${p.id}.${k} is a number (${why})`);
      else assert.ok(round.notes.some((n) => n.includes("could not hold")), `${p.id} says why the open loop has no figures`);
    }
    for (const k of CPU) {
      if (p.id === "direct") assert.equal(round[k], null, "direct has no proxy to time");
      else assert.ok(typeof round[k] === "number" && (round[k] as number) > 0, `${p.id}.${k} is a number > 0 (${why})`);
    }
    if (p.id !== "direct") {
      for (const run of ["closed", "rps16", "rps64"] as const) assert.ok((round.cpu[run]?.requests ?? 0) > 0, `${p.id} CPU reading ${run}`);
    }
    for (const k of STARTUP) {
      if (p.id === "direct") assert.equal(round[k], null, "direct has no proxy to start");
      else assert.ok(typeof round[k] === "number" && (round[k] as number) > 0, `${p.id}.${k} is a number > 0 (${why})`);
    }
    if (p.id !== "direct") assert.equal(round.startup?.starts.length, results.settings.startups, `${p.id}: every start recorded`);
    for (const k of MEMORY) {
      if (p.id === "direct") assert.equal(round[k], null, "direct has no proxy to weigh");
      else assert.equal(typeof round[k], "number", `${p.id}.${k} is a number (${why})`);
    }
    if (p.id !== "direct") assert.ok(p.processes.length >= 2 && p.processes.every((x) => x.pid > 0));
    for (const x of p.processes) {
      for (const k of ["rssStartKiB", "ussStartKiB", "rssAfterLoadKiB", "ussAfterLoadKiB", "rssQuietKiB", "ussQuietKiB"] as const) {
        assert.ok(typeof x[k] === "number" && x[k] > 0, `${x.name}.${k} is a number > 0 (${why})`);
      }
      assert.ok(x.ussStartKiB! < x.rssStartKiB!, `${x.name}: USS is a part of RSS`);
      // Read over the quiet wait's last seconds: every process, haproxy's too, wakes for some timer.
      assert.ok(typeof x.cpuIdleMsPerS === "number" && x.cpuIdleMsPerS > 0, `${x.name}.cpuIdleMsPerS is a number > 0 (${why})`);
    }
    // The idle connections pass through the client-side and the server-side proxy (not the bulk sidecar).
    if (p.id !== "direct") {
      // KiB per conn is the second batch's: it was opened too (a few connections may fail on a busy machine).
      assert.ok(round.idleConnsOpened! > Number(results.settings.idleConns), `${p.id}: both batches of idle connections opened (${round.idleConnsOpened})`);
      // Held connections take memory: each of the two proxies grew with the second batch.
      assert.equal(p.processes.filter((x) => typeof x.kibPerConn === "number" && x.kibPerConn > 0).length, 2, `${p.id} KiB per conn per proxy`);
      assert.equal(p.processes.filter((x) => typeof x.kibPerConnFirst === "number").length, 2, `${p.id} KiB per conn of the first batch per proxy`);
    }
    assert.equal(typeof p.summary.closedP50Us?.median, "number");
  }
  const ours = results.paths.find((p) => p.id === "connect-sidecar")!;
  assert.equal(typeof results.ratios.oursOverDirect.closedP50Us, "number");
  if (results.paths.find((p) => p.id === "haproxy")!.skipped === null) {
    assert.equal(typeof results.ratios.oursOverHaproxy.rps16, "number");
    assert.equal(typeof results.ratios.oursOverHaproxy.cpuRps64UsPerReq, "number");
    assert.equal(typeof results.ratios.oursOverHaproxy.startupReadyMs, "number");
  }
  assert.ok(ours.summary.closedAddedP50Us !== null);

  const md = readFileSync(join(outDir, "results.md"), "utf8");
  for (const id of PATHS) {
    const rows = md.split("\n").filter((l) => l.startsWith(`| ${id} |`));
    assert.equal(rows.length, 6, `one ${id} row in each of the six tables`);
  }
  assert.match(md, /^\| path \| ready ms \| min ms \| max ms \| RSS at ready KiB \| RSS 2 s later KiB \| USS at ready KiB \| USS 2 s later KiB \|$/m);
  assert.match(md, /^## CPU per request .*\n\n.*\n\n\| path \| µs\/req closed loop @1 \| µs\/req keep-alive @16 \| µs\/req keep-alive @64 \|$/m);
  assert.match(md, /\| \*ours\/haproxy\* \|/);
  const perProcess = md.split("\n").filter((l) => /^\| \S+ \| (connect-sidecar|haproxy) \|/.test(l));
  assert.equal(perProcess.length, results.paths.reduce((n, p) => n + p.processes.length, 0), "a per-process row per proxy process");
  for (const row of perProcess) assert.match(row, /^\| \S+ \| \S+ \| [\d,]+ \| [\d,]+ \| (-?[\d,.]+|—) \| (-?[\d,.]+|—) \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d,.]+ \|$/, row);
  assert.match(md, /Node 24\.\d+\.\d+, OpenSSL /);

  const svg = readFileSync(join(outDir, "latency.svg"), "utf8");
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  for (const id of PATHS) assert.ok(svg.includes(`>${id}`), `the legend names ${id}`);
  assert.ok((svg.match(/<rect /g) ?? []).length > 6, "the chart has bars");
});
