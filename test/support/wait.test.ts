import assert from "node:assert/strict";
import { test } from "node:test";
import { captureLog } from "./log-capture.js";
import { until } from "./wait.js";

test("until resolves once the condition holds, asking again until it does", async () => {
  let asked = 0;
  await until(() => ++asked === 3, "the third look");
  assert.equal(asked, 3);
});

test("until fails after its timeout saying what it waited for", async () => {
  await assert.rejects(until(() => false, "a condition that never holds", { timeoutMs: 30 }), {
    message: "timed out after 30 ms waiting for a condition that never holds",
  });
});

test("a log line that never comes fails the wait with what it waited for and the last lines, instead of hanging", async () => {
  const cap = captureLog();
  cap.log.info({ reason: "done" }, "inbound connection closed");
  await assert.rejects(
    cap.next((l) => l.reason === "revoked", "a revoked connection", 50),
    /timed out after 50 ms waiting for a log line: a revoked connection; the last lines:\n {2}inbound connection closed .*"reason":"done"/,
  );
  assert.equal((await cap.next((l) => l.reason === "done", "the done line", 50)).msg, "inbound connection closed");
});
