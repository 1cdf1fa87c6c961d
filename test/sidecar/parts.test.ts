import assert from "node:assert/strict";
import { test } from "node:test";
import { PartStack, type Part } from "../../src/sidecar/parts.js";

function recorder() {
  const events: string[] = [];
  const part = (name: string, o: { drain?: Promise<void>; leave?: boolean; close?: boolean } = {}): Part => ({
    name,
    ...(o.leave ? { leave: async () => void events.push(`leave ${name}`) } : {}),
    ...(o.drain ? { drain: () => (events.push(`drain ${name}`), o.drain!) } : {}),
    ...(o.close ? { close: () => void events.push(`close ${name}`) } : {}),
    destroy: () => void events.push(`destroy ${name}`),
  });
  return { events, part };
}

test("close: every part leaves first, then drains last-started first, then is closed (destroyed when it has no close)", async () => {
  const { events, part } = recorder();
  const stack = new PartStack();
  stack.add(part("agent", { close: true }));
  stack.add(part("upstreams", { drain: Promise.resolve() }));
  stack.add(part("public", { drain: Promise.resolve() }));
  stack.add(part("registration", { leave: true, close: true }));
  const cut: string[] = [];
  assert.equal(await stack.close(() => 1_000, (p) => cut.push(p.name)), true);
  assert.deepEqual(events, [
    "leave registration",
    "drain public",
    "drain upstreams",
    "close registration",
    "destroy public",
    "destroy upstreams",
    "close agent",
  ]);
  assert.deepEqual(cut, []);
});

test("close: a drain that outlives the deadline is cut (destroyed once, not closed) and close says so", async () => {
  const { events, part } = recorder();
  const stack = new PartStack();
  stack.add(part("upstreams", { drain: Promise.resolve(), close: true }));
  stack.add(part("public", { drain: new Promise<void>(() => {}), close: true }));
  const cut: string[] = [];
  assert.equal(await stack.close(() => 0, (p) => cut.push(p.name)), false);
  assert.deepEqual(cut, ["public"]);
  assert.deepEqual(events, ["drain public", "destroy public", "drain upstreams", "close upstreams"]);
});

test("a part added after the stack ended is destroyed on arrival; destroy ends each part once", async () => {
  const { events, part } = recorder();
  const stack = new PartStack();
  stack.add(part("a", { close: true }));
  stack.destroy();
  stack.destroy();
  stack.add(part("late", { close: true }));
  assert.deepEqual(events, ["destroy a", "destroy late"]);
  assert.equal(await stack.close(() => 1_000, () => assert.fail("nothing left to cut")), true);
  assert.deepEqual(events, ["destroy a", "destroy late"]);
});
