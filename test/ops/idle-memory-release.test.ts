import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test } from "node:test";
import { shouldRelease } from "../../src/ops/index.js";

const CHILD = fileURLToPath(new URL("./idle-memory-release.child.js", import.meta.url));
const MiB = 1024 * 1024;

interface ChildReport {
  started: boolean;
  rssAfterChurn: number;
  rssEnd: number;
  lines: Array<{ msg: string; rssBeforeMiB?: number; rssAfterMiB?: number }>;
}

async function runChild(flags: string[], mode: "quiet" | "busy" | "trickle" | "soon" | "no-fds" | "small" | "small-any" | "no-gc"): Promise<ChildReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, CHILD, mode], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split("\n").pop()!) as ChildReport;
}

/** The child started its release loop and never released. */
function assertNotReleased(r: ChildReport): void {
  assert.equal(r.started, true);
  assert.deepEqual(r.lines.filter((l) => l.msg === "released idle memory to the OS"), []);
}

test("release decision: only when quiet (no traffic, an idle loop) and grown past the floor by the threshold", () => {
  const o = { growthBytes: 16 * MiB, maxUtilization: 0.05 };
  const quiet = { utilization: 0.01, trafficFlowed: false, floorBytes: 100 * MiB };
  assert.equal(shouldRelease({ ...quiet, rssBytes: 150 * MiB }, o), true);
  assert.equal(shouldRelease({ ...quiet, utilization: 0.5, rssBytes: 150 * MiB }, o), false, "busy");
  assert.equal(shouldRelease({ ...quiet, trafficFlowed: true, rssBytes: 150 * MiB }, o), false, "light traffic still flowing");
  assert.equal(shouldRelease({ ...quiet, rssBytes: 110 * MiB }, o), false, "not grown enough");
});

test("after a burst of garbage, a quiet process gives V8's pooled pages back to the OS", async () => {
  const r = await runChild(["--max-semi-space-size=2"], "quiet");
  assert.equal(r.started, true);
  const released = r.lines.filter((l) => l.msg === "released idle memory to the OS");
  assert.equal(released.length, 1, JSON.stringify(r.lines));
  // The churn leaves ~100 MB of freed V8 pages resident; the release returns most of them.
  assert.ok(r.rssEnd < r.rssAfterChurn - 32 * MiB, `RSS ${Math.round(r.rssAfterChurn / MiB)} → ${Math.round(r.rssEnd / MiB)} MiB`);
  assert.ok(released[0]!.rssAfterMiB! < released[0]!.rssBeforeMiB!);
});

test("a process carrying a trickle of traffic on an idle event loop is not paused for a release", async () => {
  assertNotReleased(await runChild(["--max-semi-space-size=2"], "trickle"));
});

test("checkAfter looks once after the given quiet time, long before the next interval", async () => {
  const r = await runChild(["--max-semi-space-size=2"], "soon");
  const released = r.lines.filter((l) => l.msg === "released idle memory to the OS");
  assert.equal(released.length, 1, JSON.stringify(r.lines));
  assert.ok(r.rssEnd < r.rssAfterChurn - 32 * MiB, `RSS ${Math.round(r.rssAfterChurn / MiB)} → ${Math.round(r.rssEnd / MiB)} MiB`);
});

test("a look asked for with anyGrowth releases what a small spell left, which the growth threshold alone keeps", async () => {
  // What the sidecar asks for at ready: start-up's garbage is a few MB, under the threshold.
  assertNotReleased(await runChild(["--max-semi-space-size=2"], "small"));
  const r = await runChild(["--max-semi-space-size=2"], "small-any");
  const released = r.lines.filter((l) => l.msg === "released idle memory to the OS");
  assert.equal(released.length, 1, JSON.stringify(r.lines));
});

test("a look that cannot read RSS (EMFILE: no fd left) is skipped; the process lives on", async () => {
  assertNotReleased(await runChild(["--max-semi-space-size=2"], "no-fds"));
});

test("a busy process is not paused for a release", async () => {
  assertNotReleased(await runChild(["--max-semi-space-size=2"], "busy"));
});

test("without a gc() to run, the release is off and says so", async () => {
  const off = await runChild(["--max-semi-space-size=2"], "no-gc");
  assert.equal(off.started, false);
  assert.deepEqual(off.lines.map((l) => l.msg), ["idle memory release is off: V8 gives no gc() to run"]);
});
