// The Node load generators, one measurement per process run (pinned away from the proxies):
//   node loadgen.js '<json LoadgenJob>'  → one JSON result line on stdout
// closed: 1 connection, closed loop, HDR histogram of each request's latency.
// open:   constant rate over N connections, latency from each request's INTENDED send time.
// rate:   keep-alive requests/s over N closed-loop connections (used when wrk is missing).
// connrate: one request per connection (`Connection: close`) over N concurrent clients.
// bulk:   one connection to the sink/source app, MB/s for a transfer in one direction.
// idle:   opens N connections (one request each), prints {"opened"}, holds them until stdin closes.
import { Worker } from "node:worker_threads";
import { Histogram, type HistogramJson } from "./histogram.js";
import { dial, HttpConn, requestBytes, type Target } from "./http-conn.js";

export type LoadgenJob =
  | { mode: "closed"; target: Target; path: string; durationMs: number; warmupMs: number }
  | { mode: "open"; target: Target; path: string; rate: number; conns: number; durationMs: number; warmupMs: number }
  | { mode: "rate"; target: Target; path: string; conns: number; durationMs: number; warmupMs: number }
  | { mode: "connrate"; target: Target; path: string; conns: number; durationMs: number; warmupMs: number }
  | { mode: "bulk"; target: Target; direction: "down" | "up"; bytes: number }
  | { mode: "idle"; target: Target; path: string; conns: number };

/**
 * `answered`: every request answered, the warm-up's too (what the proxies' CPU was spent on, the
 * divisor of CPU per request); the other counts and the histogram leave the warm-up out.
 */
export interface ClosedResult { mode: "closed"; hist: HistogramJson; errors: number; answered: number }
export interface OpenResult {
  mode: "open"; hist: HistogramJson; errors: number; sent: number; completed: number; incomplete: number;
  /** How late the generator itself sent (intended → written), p50 / p99 in ns. */
  latenessP50Ns: number; latenessP99Ns: number;
  /** False when the generator could not keep its own schedule: then the latencies are not reported. */
  held: boolean; reason: string | undefined;
}
export interface RateResult { mode: "rate" | "connrate"; perSecond: number; completed: number; errors: number; seconds: number; answered: number }
export interface BulkResult { mode: "bulk"; direction: "down" | "up"; bytes: number; seconds: number; mbPerSecond: number }
export type LoadgenResult = ClosedResult | OpenResult | RateResult | BulkResult;

const nowNs = (): bigint => process.hrtime.bigint();
// A generator whose own sends are more than 5 ms late at p99 is not holding the rate (its lateness is
// inside every latency it reports, so past this it would be measuring itself).
const OPEN_MAX_LATENESS_P99_NS = 5_000_000;
const OPEN_DRAIN_MS = 10_000;
const MAX_CLOSED_ERRORS = 1000;

async function closedLoop(job: Extract<LoadgenJob, { mode: "closed" }>): Promise<ClosedResult> {
  let conn = await HttpConn.open(job.target);
  const req = requestBytes(job.path);
  const hist = new Histogram();
  let errors = 0;
  let answered = 0;
  const warmEnd = nowNs() + BigInt(job.warmupMs * 1e6);
  const end = warmEnd + BigInt(job.durationMs * 1e6);
  await new Promise<void>((resolve) => {
    const next = (): void => {
      const t0 = nowNs();
      if (t0 >= end) return resolve();
      if (conn.closed) return void reconnect();
      conn.send(req, (ok) => {
        const t1 = nowNs();
        if (ok) answered++;
        if (t0 >= warmEnd) {
          if (ok) hist.record(Number(t1 - t0));
          else errors++;
        }
        next();
      });
    };
    // A path that drops the connection is counted as an error and dialled again; a path that cannot
    // be dialled at all ends the loop with what it has.
    const reconnect = (): void => {
      if (errors > MAX_CLOSED_ERRORS) return resolve();
      HttpConn.open(job.target).then(
        (c) => {
          conn = c;
          next();
        },
        () => {
          errors++;
          resolve();
        },
      );
    };
    next();
  });
  conn.close();
  return { mode: "closed", hist: hist.toJSON(), errors, answered };
}

async function openLoop(job: Extract<LoadgenJob, { mode: "open" }>): Promise<OpenResult> {
  const req = requestBytes(job.path);
  const conns = await Promise.all(Array.from({ length: job.conns }, () => HttpConn.open(job.target)));
  for (const c of conns) await c.request(req); // every connection set up end to end before the clock starts
  const idle: HttpConn[] = [...conns];
  const intervalNs = 1e9 / job.rate;
  const count = Math.round(((job.warmupMs + job.durationMs) / 1000) * job.rate);
  const warmupNs = job.warmupMs * 1e6;
  const worker = new Worker(new URL("./ticker.js", import.meta.url));
  let start = 0n; // set when the ticker is ready
  const hist = new Histogram();
  const lateness = new Histogram();
  const queue: number[] = []; // intended send times (ns after start) waiting for a free connection
  let head = 0;
  let sent = 0;
  let completed = 0;
  let errors = 0;
  let ticking = true;

  const result = await new Promise<{ drained: boolean }>((resolve) => {
    let drainTimer: NodeJS.Timeout | undefined;
    const maybeDone = (): void => {
      if (ticking || completed < sent) return;
      if (drainTimer) clearTimeout(drainTimer);
      resolve({ drained: true });
    };
    const dispatch = (): void => {
      while (head < queue.length && idle.length > 0) {
        const intended = queue[head++]!;
        const conn = idle.shift()!; // oldest idle first: all the connections carry traffic, as with a fixed per-connection rate
        if (head > 4096) {
          queue.splice(0, head);
          head = 0;
        }
        conn.send(req, (ok) => {
          const done = Number(nowNs() - start);
          completed++;
          if (intended >= warmupNs) {
            if (ok) hist.record(done - intended);
            else errors++;
          }
          if (!conn.closed) idle.push(conn);
          dispatch();
          maybeDone();
        });
      }
    };
    worker.on("message", (msg: number | "done" | "ready") => {
      if (msg === "ready") {
        start = nowNs() + 2_000_000n;
        return void worker.postMessage({ startNs: start.toString(), intervalNs, count });
      }
      if (msg === "done") {
        ticking = false;
        void worker.terminate();
        drainTimer = setTimeout(() => resolve({ drained: false }), OPEN_DRAIN_MS);
        return maybeDone();
      }
      const intended = msg * intervalNs;
      if (intended >= warmupNs) lateness.record(Number(nowNs() - start) - intended);
      queue.push(intended);
      sent++;
      dispatch();
    });
    worker.on("error", (err) => {
      process.stderr.write(`ticker failed: ${err.message}\n`);
      ticking = false;
      resolve({ drained: false });
    });
  });
  for (const c of conns) c.close();
  const latenessP99Ns = lateness.percentile(99);
  const incomplete = sent - completed;
  let reason: string | undefined;
  if (sent < count) reason = `sent ${sent} of ${count} scheduled requests`;
  else if (latenessP99Ns > OPEN_MAX_LATENESS_P99_NS)
    reason = `the generator ran late: p99 ${(latenessP99Ns / 1e3).toFixed(0)} µs behind schedule (limit ${OPEN_MAX_LATENESS_P99_NS / 1e3} µs)`;
  else if (!result.drained) reason = `${incomplete} requests still unanswered ${OPEN_DRAIN_MS / 1000} s after the last send`;
  return {
    mode: "open",
    hist: hist.toJSON(),
    errors,
    sent,
    completed,
    incomplete,
    latenessP50Ns: lateness.percentile(50),
    latenessP99Ns,
    held: reason === undefined,
    reason,
  };
}

async function keepAliveRate(job: Extract<LoadgenJob, { mode: "rate" }>): Promise<RateResult> {
  const req = requestBytes(job.path);
  const conns = await Promise.all(Array.from({ length: job.conns }, () => HttpConn.open(job.target)));
  const warmEnd = nowNs() + BigInt(job.warmupMs * 1e6);
  const end = warmEnd + BigInt(job.durationMs * 1e6);
  let completed = 0;
  let errors = 0;
  let answered = 0;
  await Promise.all(
    conns.map(
      (conn) =>
        new Promise<void>((resolve) => {
          const next = (): void => {
            if (conn.closed || nowNs() >= end) return resolve();
            conn.send(req, (ok) => {
              if (ok) answered++;
              if (nowNs() >= warmEnd) {
                if (ok) completed++;
                else errors++;
              }
              next();
            });
          };
          next();
        }),
    ),
  );
  for (const c of conns) c.close();
  const seconds = job.durationMs / 1000;
  return { mode: "rate", perSecond: completed / seconds, completed, errors, seconds, answered };
}

async function connectionRate(job: Extract<LoadgenJob, { mode: "connrate" }>): Promise<RateResult> {
  const req = requestBytes(job.path, true);
  const warmEnd = nowNs() + BigInt(job.warmupMs * 1e6);
  const end = warmEnd + BigInt(job.durationMs * 1e6);
  let completed = 0;
  let errors = 0;
  let answered = 0;
  const client = async (): Promise<void> => {
    while (nowNs() < end) {
      let ok = false;
      try {
        const conn = new HttpConn(await dial(job.target));
        ok = await conn.request(req);
        conn.close();
      } catch {
        ok = false;
      }
      if (ok) answered++;
      if (nowNs() >= warmEnd) {
        if (ok) completed++;
        else errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: job.conns }, client));
  const seconds = job.durationMs / 1000;
  return { mode: "connrate", perSecond: completed / seconds, completed, errors, seconds, answered };
}

async function bulk(job: Extract<LoadgenJob, { mode: "bulk" }>): Promise<BulkResult> {
  const sock = await dial(job.target);
  const header = Buffer.alloc(9);
  header[0] = (job.direction === "down" ? "D" : "U").charCodeAt(0);
  header.writeBigUInt64BE(BigInt(job.bytes), 1);
  const t0 = nowNs();
  let got = 0;
  const finished = new Promise<void>((resolve, reject) => {
    sock.on("data", (chunk: Buffer) => void (got += chunk.length));
    sock.once("end", () => resolve());
    sock.once("error", reject);
  });
  sock.write(header);
  if (job.direction === "up") {
    const chunk = Buffer.alloc(1 << 20, 0x62);
    let left = job.bytes;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        await new Promise((r) => sock.once("drain", r));
      }
    }
  }
  await finished;
  const seconds = Number(nowNs() - t0) / 1e9;
  sock.destroy();
  const expected = job.direction === "down" ? job.bytes : 1;
  if (got !== expected) throw new Error(`bulk ${job.direction}: received ${got} bytes, expected ${expected}`);
  return { mode: "bulk", direction: job.direction, bytes: job.bytes, seconds, mbPerSecond: job.bytes / 1e6 / seconds };
}

async function holdIdle(job: Extract<LoadgenJob, { mode: "idle" }>): Promise<void> {
  const req = requestBytes(job.path);
  const conns: HttpConn[] = [];
  let failed = 0;
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < job.conns) {
      next++;
      try {
        const c = await HttpConn.open(job.target);
        if (await c.request(req)) conns.push(c);
        else {
          failed++;
          c.close();
        }
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, opener));
  process.stdout.write(`${JSON.stringify({ opened: conns.length, failed })}\n`);
  await new Promise<void>((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.on("error", resolve);
    process.stdin.resume();
  });
  const open = conns.filter((c) => !c.closed).length;
  for (const c of conns) c.close();
  process.stdout.write(`${JSON.stringify({ stillOpen: open })}\n`);
}

async function run(job: LoadgenJob): Promise<LoadgenResult | undefined> {
  switch (job.mode) {
    case "closed":
      return closedLoop(job);
    case "open":
      return openLoop(job);
    case "rate":
      return keepAliveRate(job);
    case "connrate":
      return connectionRate(job);
    case "bulk":
      return bulk(job);
    case "idle":
      await holdIdle(job);
      return undefined;
  }
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2] ?? "{}") as LoadgenJob;
  try {
    const result = await run(job);
    if (result !== undefined) process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`loadgen ${job.mode}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
