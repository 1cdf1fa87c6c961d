import assert from "node:assert/strict";
import { test } from "node:test";
import { delay, settlesWithin } from "../../src/net/index.js";

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("delay: true when the time ran out, false when the signal aborted first or already had", async () => {
  assert.equal(await delay(1), true);
  const ac = new AbortController();
  const before = timers();
  const waiting = delay(60_000, ac.signal);
  ac.abort();
  assert.equal(await waiting, false);
  assert.equal(timers(), before, "the aborted wait's timer is cleared");
  assert.equal(await delay(60_000, ac.signal), false);
});

test("settlesWithin: settled (either way), timed out, or aborted; an already settled promise wins over a spent budget", async () => {
  assert.equal(await settlesWithin(Promise.resolve(), 1_000), true);
  assert.equal(await settlesWithin(Promise.reject(new Error("x")), 1_000), true);
  assert.equal(await settlesWithin(new Promise(() => {}), 1), false);
  assert.equal(await settlesWithin(Promise.resolve(), 0), true);
  const ac = new AbortController();
  const before = timers();
  const waiting = settlesWithin(new Promise(() => {}), 60_000, ac.signal);
  ac.abort();
  assert.equal(await waiting, false);
  assert.equal(timers(), before, "the aborted wait's timer is cleared");
});
