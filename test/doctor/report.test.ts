// The report as text (one line per check) and JSON, and the exit code.
import assert from "node:assert/strict";
import { test } from "node:test";
import { doctorExitCode, formatReport, type Check, type DoctorReport } from "../../src/doctor/index.js";

function reportOf(checks: Check[], fatal?: DoctorReport["fatal"]): DoctorReport {
  const counts = { PASS: 0, WARN: 0, FAIL: 0, SKIP: 0 };
  for (const c of checks) counts[c.verdict]++;
  return { agent: "http://127.0.0.1:8500", service: "web", proxyId: "web-sidecar-proxy", checkedAt: "2026-01-01T00:00:00.000Z", checks, fatal, counts };
}

const pass: Check = { id: "acl-enabled", step: "acl-default-deny", verdict: "PASS", seen: "ACLs are on" };
const warn: Check = { id: "gossip-encryption", step: "encrypted-agent-traffic", verdict: "WARN", seen: "cannot tell", fix: "rerun with an audit token" };
const fail: Check = { id: "token-file", step: "service-token", verdict: "FAIL", seen: "mode 0644", fix: "chmod 600 /etc/web.token" };
const skip: Check = { id: "token-scope", step: "service-token", verdict: "SKIP", seen: "ACLs are disabled", fix: "never shown" };

test("exit code: 0 when nothing fails (WARN included), 1 on any FAIL, 2 when it could not check", () => {
  assert.equal(doctorExitCode(reportOf([pass, warn, skip])), 0);
  assert.equal(doctorExitCode(reportOf([pass, fail])), 1);
  assert.equal(doctorExitCode(reportOf([pass], { reason: "agent_unreachable", message: "ECONNREFUSED" })), 2);
});

test("text: a heading, one line per check with its verdict, what was seen and the fix, then a summary", () => {
  const text = formatReport(reportOf([pass, warn, fail, skip]), { json: false });
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 6);
  assert.equal(lines[0], "connect-sidecar doctor: web (proxy web-sidecar-proxy) via http://127.0.0.1:8500");
  assert.match(lines[1]!, /^PASS  acl-enabled +ACLs are on$/);
  assert.match(lines[2]!, /^WARN  gossip-encryption +cannot tell — fix: rerun with an audit token$/);
  assert.match(lines[3]!, /^FAIL  token-file +mode 0644 — fix: chmod 600 \/etc\/web\.token$/);
  assert.match(lines[4]!, /^SKIP  token-scope +ACLs are disabled$/, "no fix on SKIP");
  assert.equal(lines[5], "1 PASS, 1 WARN, 1 FAIL, 1 SKIP: exit 1");
});

test("json: the report with its exit code, parseable", () => {
  const parsed = JSON.parse(formatReport(reportOf([pass, fail], { reason: "identity_unresolved", message: "No sidecar proxy registered for web" }), { json: true }));
  assert.equal(parsed.exitCode, 2);
  assert.equal(parsed.fatal.reason, "identity_unresolved");
  assert.deepEqual(parsed.checks.map((c: Check) => [c.id, c.verdict, c.step]), [
    ["acl-enabled", "PASS", "acl-default-deny"],
    ["token-file", "FAIL", "service-token"],
  ]);
  assert.equal(parsed.checks[1].fix, "chmod 600 /etc/web.token");
});
