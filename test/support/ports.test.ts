// The sidecar-range picker: blocks below the ephemeral range, never one a live process holds.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { canBind } from "../../src/net/index.js";
import { leaseSidecarRange, SIDECAR_BLOCK, SIDECAR_PORTS_FIRST, sidecarPortsEnd } from "./ports.js";

/** A lock directory of its own, and a TestContext stand-in whose after-hooks the test runs. */
function sandbox(t: { after(fn: () => void): void }) {
  const lockDir = mkdtempSync(join(tmpdir(), "ports-test-"));
  t.after(() => rmSync(lockDir, { recursive: true, force: true }));
  const hooks: Array<() => unknown> = [];
  return { lockDir, ctx: { after: (fn: () => unknown) => void hooks.push(fn) }, release: () => hooks.forEach((h) => h()) };
}

const blockStarts = (): number[] => {
  const out: number[] = [];
  for (let min = SIDECAR_PORTS_FIRST; min + SIDECAR_BLOCK <= sidecarPortsEnd(); min += SIDECAR_BLOCK) out.push(min);
  return out;
};

test("a leased range lies in 30000 up to the ephemeral range, disjoint from pickFreePort's 10000–29999", async (t) => {
  const { lockDir, ctx, release } = sandbox(t);
  const a = await leaseSidecarRange(ctx, { lockDir });
  const b = await leaseSidecarRange(ctx, { lockDir });
  for (const r of [a, b]) {
    assert.equal(r.max - r.min + 1, SIDECAR_BLOCK);
    assert.ok(r.min >= SIDECAR_PORTS_FIRST && r.max < sidecarPortsEnd(), `${r.min}–${r.max}`);
  }
  assert.ok(a.max < b.min || b.max < a.min, "two leases never overlap");
  assert.deepEqual(readdirSync(lockDir).sort(), [String(a.min), String(b.min)].sort());
  release();
  assert.deepEqual(readdirSync(lockDir), [], "released after the test");
});

test("a block locked by a live process is never leased; one whose process is gone is taken over", async (t) => {
  const { lockDir, ctx, release } = sandbox(t);
  // The spare is a block whose ports are all free right now (another checkout's suite may hold some).
  let spare: number | undefined;
  for (const min of blockStarts()) {
    const ports = Array.from({ length: SIDECAR_BLOCK }, (_, i) => min + i);
    if ((await Promise.all(ports.map((p) => canBind("0.0.0.0", p)))).every(Boolean)) {
      spare = min;
      break;
    }
  }
  assert.ok(spare !== undefined, "some block is free");
  const others = blockStarts().filter((min) => min !== spare);
  for (const min of others) writeFileSync(join(lockDir, String(min)), String(process.pid)); // alive: this process
  writeFileSync(join(lockDir, String(spare)), "99999999"); // beyond any pid_max: gone
  const got = await leaseSidecarRange(ctx, { lockDir });
  assert.equal(got.min, spare);
  release();
  assert.equal(existsSync(join(lockDir, String(spare))), false);
  for (const min of others) assert.ok(existsSync(join(lockDir, String(min))), `block ${min} still held by its owner`);
});
