import { test } from "node:test";
import assert from "node:assert/strict";
import { bucketHighNs, bucketOf, Histogram } from "../../../bench/harness/histogram.js";
import { summarize } from "../../../bench/harness/stats.js";

test("every value falls in a bucket whose bounds hold it within 1/128", () => {
  const values = [0, 1, 255, 256, 257, 511, 512, 1000, 65_535, 1_000_000, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 12345, 7.5e10];
  for (let v = 1; v < 2 ** 40; v = Math.ceil(v * 1.37) + 1) values.push(v);
  for (const v of values) {
    const b = bucketOf(v);
    const high = bucketHighNs(b);
    assert.ok(high >= v, `bucket ${b} of ${v} ends at ${high}`);
    assert.ok(b === 0 || bucketHighNs(b - 1) < v, `${v} is not in an earlier bucket`);
    assert.ok((high - v) / Math.max(v, 1) <= 1 / 128, `${v} → ${high} is within 0.8 %`);
  }
});

test("percentiles of a uniform 1..100000 ns sample are within the bucket error", () => {
  const h = new Histogram();
  for (let v = 1; v <= 100_000; v++) h.record(v);
  for (const p of [50, 90, 99, 99.9]) {
    const exact = (p / 100) * 100_000;
    const got = h.percentile(p);
    assert.ok(Math.abs(got - exact) / exact <= 1 / 128, `p${p}: ${got} vs ${exact}`);
  }
  assert.equal(h.percentile(100), 100_000);
  assert.equal(h.total, 100_000);
  assert.equal(h.min, 1);
});

test("a histogram survives JSON and merges with another", () => {
  const a = new Histogram();
  const b = new Histogram();
  for (let i = 0; i < 1000; i++) a.record(10_000 + i);
  for (let i = 0; i < 1000; i++) b.record(5_000_000 + i * 10);
  const back = Histogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
  assert.equal(back.total, 1000);
  assert.equal(back.percentile(50), a.percentile(50));
  back.merge(b);
  assert.equal(back.total, 2000);
  assert.ok(back.percentile(25) < 11_000);
  assert.ok(back.percentile(75) >= 5_000_000);
  assert.equal(back.max, b.max);
  assert.ok(Number.isNaN(new Histogram().percentile(50)));
});

test("a summary gives the median, extremes and spread, and ignores missing figures", () => {
  assert.deepEqual(summarize([3, null, 1, 2]), { median: 2, min: 1, max: 3, spreadPct: 100, n: 3, values: [3, 1, 2] });
  assert.equal(summarize([5])?.spreadPct, null);
  assert.equal(summarize([null, undefined, Number.NaN]), null);
  assert.equal(summarize([1, 2, 3, 4])?.median, 2.5);
});
