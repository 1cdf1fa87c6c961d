import assert from "node:assert/strict";
import { test } from "node:test";
import { errorCloseReason, isPipeCloseReason, isRefusal } from "../../src/net/index.js";

test("a refusal is a reject reason of either direction on a connection that never reached its destination", () => {
  assert.equal(isRefusal("denied", false), true);
  assert.equal(isRefusal("no_healthy_instances", false), true);
  assert.equal(isRefusal("shutdown", false), true, "the listener went away while connecting");
  assert.equal(isRefusal("shutdown", true), false, "a proxied connection cut at shutdown was served, not refused");
  assert.equal(isRefusal("client_reset", false), false, "a client that left (a TCP health check) was not refused");
  assert.equal(isRefusal("internal_error", false), false, "our bug is not a refusal of the peer");
  assert.equal(isRefusal("revoked", false), false);
});

test("only pipe reasons pass through an abort signal as the close reason", () => {
  assert.equal(isPipeCloseReason("revoked"), true);
  assert.equal(isPipeCloseReason("draining"), false);
  assert.equal(isPipeCloseReason(undefined), false);
});

test("a socket error ends a connection as a reset, a timeout (a peer that stopped answering) or an error, on its side", () => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  assert.deepEqual(["ECONNRESET", "EPIPE", "ECONNABORTED"].map((c) => errorCloseReason(err(c), "client")), ["client_reset", "client_reset", "client_reset"]);
  assert.equal(errorCloseReason(err("ETIMEDOUT"), "server"), "server_timeout");
  assert.equal(errorCloseReason(err("EPROTO"), "server"), "server_error");
});
