// The open-loop generator's clock, on its own thread. It posts "ready", receives the schedule, then
// posts tick i at start + i·interval and finally "done". It sleeps with Atomics.wait (sub-millisecond,
// unlike the event loop's 1 ms timers) until SPIN_NS before each tick and spins only for that last
// stretch: timer wake-ups on a busy VM are tens of µs late, spinning the whole interval would steal
// the CPU the app shares with the generator. The main thread measures every latency from the
// tick's intended time, so whatever lateness remains is counted, never hidden.
import { parentPort } from "node:worker_threads";

const SPIN_NS = 50_000;
const port = parentPort!;
const cell = new Int32Array(new SharedArrayBuffer(4));

port.once("message", ({ startNs, intervalNs, count }: { startNs: string; intervalNs: number; count: number }) => {
  const start = BigInt(startNs);
  for (let i = 0; i < count; i++) {
    const target = start + BigInt(Math.round(i * intervalNs));
    for (;;) {
      const leftNs = Number(target - process.hrtime.bigint());
      if (leftNs <= 0) break;
      if (leftNs > SPIN_NS) Atomics.wait(cell, 0, 0, (leftNs - SPIN_NS) / 1e6);
    }
    port.postMessage(i);
  }
  port.postMessage("done");
});
port.postMessage("ready");
