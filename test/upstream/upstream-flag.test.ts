import assert from "node:assert/strict";
import { test } from "node:test";
import { parseUpstreamFlag } from "../../src/upstream/index.js";

test("-upstream name:port binds 127.0.0.1 and defaults to a service", () => {
  const u = parseUpstreamFlag("db:9191");
  assert.equal(u.destinationType, "service");
  assert.equal(u.destinationName, "db");
  assert.equal(u.destinationNamespace, "default");
  assert.equal(u.localBindAddress, "127.0.0.1");
  assert.equal(u.localBindPort, 9191);
  assert.equal(u.localBindSocketPath, "");
  assert.deepEqual(u.config, {});
});

test("-upstream takes a .service or .query suffix and an explicit host", () => {
  assert.deepEqual(
    [parseUpstreamFlag("db.service:10.0.0.1:9191")].map((u) => [u.destinationType, u.destinationName, u.localBindAddress, u.localBindPort]),
    [["service", "db", "10.0.0.1", 9191]],
  );
  const q = parseUpstreamFlag("q.query:9292");
  assert.equal(q.destinationType, "prepared_query");
  assert.equal(q.destinationName, "q");
  const blank = parseUpstreamFlag("db.:9191");
  assert.equal(blank.destinationType, "service");
  const v6 = parseUpstreamFlag("db:[::1]:9191");
  assert.equal(v6.localBindAddress, "::1");
});

test("-upstream refuses other suffixes with Consul's text, and bad ports", () => {
  assert.throws(() => parseUpstreamFlag("db.svc:9191"), (e: Error & { code?: string }) => {
    assert.equal(e.code, "config");
    assert.match(e.message, /Upstream type must be blank, 'service', or 'query'/);
    return true;
  });
  for (const bad of ["db", "db:", "db:abc", "db:0", "db:70000", ":9191", "db:host:"]) {
    assert.throws(() => parseUpstreamFlag(bad), { code: "config" }, bad);
  }
});
