// Listing a policy's rules and the rights they add beyond a service identity (spec §11.3, §11.4).
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatRule, grantsServiceWrite, parseRules, rightsBeyondIdentity } from "../../src/doctor/policy-rules.js";

test("HCL rules: blocks with policy and intentions, scalars, comments", () => {
  const rules = parseRules(`
    # web's own rights
    service "web" { policy = "write" }
    service "web-sidecar-proxy" { policy = "write" }
    service_prefix "" { policy = "read"  intentions = "write" }
    node_prefix "" { policy = "read" }
    key_prefix "app/" { policy = "list" }
    acl = "write"
  `);
  assert.ok(rules);
  assert.deepEqual(rightsBeyondIdentity(rules, "web").map(formatRule), [
    'service_prefix "" { intentions = "write" }',
    'key_prefix "app/" { policy = "list" }',
    'acl = "write"',
  ]);
  assert.equal(grantsServiceWrite(rules, "web"), true);
  assert.equal(grantsServiceWrite(rules, "db"), false);
});

test("the rules of a service identity add nothing; a deny never adds a right", () => {
  const rules = parseRules('service "web" { policy = "write" }\nservice "web-sidecar-proxy" { policy = "write" }\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\nservice "db" { policy = "deny" }\noperator = "deny"');
  assert.deepEqual(rightsBeyondIdentity(rules!, "web"), []);
  assert.deepEqual(rightsBeyondIdentity(rules!, "api").map(formatRule), ['service "web" { policy = "write" }', 'service "web-sidecar-proxy" { policy = "write" }']);
});

test("JSON rules and a write prefix", () => {
  const rules = parseRules('{"service_prefix": {"we": {"policy": "write"}}, "agent_prefix": {"": {"policy": "read"}}, "mesh": "write"}');
  assert.ok(rules);
  assert.equal(grantsServiceWrite(rules, "web"), true);
  assert.deepEqual(rightsBeyondIdentity(rules, "web").map(formatRule), ['service_prefix "we" { policy = "write" }', 'agent_prefix "" { policy = "read" }', 'mesh = "write"']);
});

test("a form the reader does not know is 'cannot tell', never an empty list", () => {
  assert.equal(parseRules('service "web" { policy = "write" }\nsomething odd'), undefined);
  assert.equal(parseRules("{not json"), undefined);
  assert.deepEqual(parseRules("  "), []);
});
