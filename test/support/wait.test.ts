import assert from "node:assert/strict";
import { test } from "node:test";
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
