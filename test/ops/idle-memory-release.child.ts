// Run by idle-memory-release.test.ts as `node --max-semi-space-size=2 <this> <mode>` (no --expose-gc:
// the release takes its gc() at run time, as in a proxy):
// churns ~150 MB of short-lived objects (freed, but V8 keeps their pages pooled), then either stays
// quiet ("quiet"), keeps the event loop busy ("busy"), or stays idle but for a trickle of traffic
// seen by the activity count ("trickle") while the release loop runs every 200 ms, or ("soon") stays
// quiet with a 60 s interval after asking for a look in 300 ms, or ("no-fds") does that while
// process.memoryUsage.rss() throws EMFILE, or ("small") churns only a few MB, under the growth
// threshold, and asks for one look in 300 ms that releases whatever the growth ("small-any"), or
// ("no-gc") is given no gc() to run.
// Prints one JSON line: RSS after the churn, RSS at the end, and the release log lines.
import { createLogger } from "../../src/ops/index.js";
import { startIdleMemoryRelease } from "../../src/ops/idle-memory-release.js";

const mode = process.argv[2];
const lines: unknown[] = [];
const log = createLogger({ level: "debug", json: true, destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
let moved = 0; // the trickle's bytes, standing in for bytesPiped()
// "soon": the interval is too long to look within the test; only checkAfter() can release. Its one
// look must not depend on how busy V8's own clean-up of the churn kept the loop in those 300 ms (on a
// loaded CI machine it was busier than 5 %): the utilization rule is the "busy" test's to check.
const small = mode === "small" || mode === "small-any";
const lookOnce = mode === "soon" || mode === "no-fds" || small;
const release = startIdleMemoryRelease(log, {
  intervalMs: lookOnce ? 60_000 : 200,
  growthBytes: 32 * 1024 * 1024,
  activity: () => moved,
  ...(lookOnce ? { maxUtilization: 1 } : {}),
  ...(mode === "no-gc" ? { gc: null } : {}),
});

let keep: object[] = [];
for (let round = 0; round < (small ? 3 : 60); round++) {
  for (let i = 0; i < 20_000; i++) keep.push({ a: new Array(16).fill(i), s: `x${i}`, b: { c: i } });
  if (keep.length > 40_000) keep = keep.slice(-20_000);
}
keep = [];
const rssAfterChurn = process.memoryUsage.rss();

const until = Date.now() + 1_500;
if (mode === "busy") {
  // Busy without allocating much: the event loop never idles for the whole window.
  while (Date.now() < until) for (let i = 0; i < 1e5; i++) Math.sqrt(i);
  await new Promise((r) => setTimeout(r, 50)); // let the interval's last tick run
} else if (mode === "trickle") {
  // One small "request" every 20 ms: the loop is idle almost all the time, but traffic flows.
  while (Date.now() < until) {
    moved += 64;
    await new Promise((r) => setTimeout(r, 20));
  }
} else {
  if (mode === "soon" || mode === "no-fds" || mode === "small") release?.checkAfter(300);
  if (mode === "small-any") release?.checkAfter(300, { anyGrowth: true });
  // No fd left to open /proc/self/stat: what process.memoryUsage.rss() throws under a connection flood.
  if (mode === "no-fds") process.memoryUsage.rss = () => { throw Object.assign(new Error("EMFILE: too many open files, uv_resident_set_memory"), { code: "EMFILE" }); };
  await new Promise((r) => setTimeout(r, until - Date.now()));
}
release?.close();
process.stdout.write(`${JSON.stringify({ started: release !== undefined, rssAfterChurn, rssEnd: mode === "no-fds" ? 0 : process.memoryUsage.rss(), lines })}\n`);
