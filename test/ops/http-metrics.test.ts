// One listener's per-request HTTP metrics: bounded label classes, counted without a label string per request.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { bindHttpMetrics, createMetrics } from "../../src/ops/index.js";

test("requests are counted by method class and status class; unknown methods are 'other', no or bad status '0xx'", async () => {
  const m = createMetrics(new Registry(), { processMetrics: false });
  const h = bindHttpMetrics(m, "public");
  for (const [method, status] of [["GET", 200], ["GET", 204], ["POST", 404], ["PROPFIND", 207], ["DELETE", 0], ["PATCH", 999], ["HEAD", 101], ["PUT", 503]] as const) {
    h.request(method, status, 0.001);
  }
  h.denied();
  const got = (await m.httpRequests.get()).values.map((v) => `${v.labels.listener} ${v.labels.method_class} ${v.labels.code_class} ${v.value}`).sort();
  assert.deepEqual(got, ["public DELETE 0xx 1", "public GET 2xx 2", "public HEAD 1xx 1", "public PATCH 0xx 1", "public POST 4xx 1", "public PUT 5xx 1", "public other 2xx 1"]);
  assert.equal((await m.httpRequestDuration.get()).values.find((v) => v.metricName?.endsWith("_count"))?.value, 8);
  assert.equal((await m.httpRequestsDenied.get()).values[0]?.value, 1);
});
