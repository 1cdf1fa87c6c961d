import assert from "node:assert/strict";
import { test } from "node:test";
import { applyFilter, evalFilter, parseFilter, FilterError } from "../../src/dev-agent/catalog-filter.js";
import { HttpError } from "../../src/dev-agent/http-error.js";

const proxy = {
  Kind: "connect-proxy", ID: "web-sidecar-proxy", Service: "web-sidecar-proxy", Tags: ["v1", "blue"], Meta: { env: "prod", "a.b": "x" },
  Port: 21000, EnableTagOverride: false, Proxy: { DestinationServiceName: "web", DestinationServiceID: "web" },
};
const plain = { ID: "web", Service: "web", Tags: [], Meta: {}, Port: 8080, EnableTagOverride: false };
const match = (expr: string, obj: unknown) => evalFilter(parseFilter(expr), obj);

test("== and != compare strings, numbers and booleans; missing fields are unequal", () => {
  assert.equal(match('Kind == "connect-proxy"', proxy), true);
  assert.equal(match('Kind == "connect-proxy"', plain), false);
  assert.equal(match('Kind != "connect-proxy"', plain), true);
  assert.equal(match("Port == 21000", proxy), true);
  assert.equal(match("EnableTagOverride == false", proxy), true);
  assert.equal(match("Service == `web`", plain), true);
});

test("nested selectors reach Proxy fields and map keys", () => {
  assert.equal(match('Proxy.DestinationServiceID == "web"', proxy), true);
  assert.equal(match('Proxy.DestinationServiceID == "web"', plain), false);
  assert.equal(match('Meta.env == "prod"', proxy), true);
  assert.equal(match('Meta["a.b"] == "x"', proxy), true);
});

test("in, not in, contains, is empty and matches", () => {
  assert.equal(match('"blue" in Tags', proxy), true);
  assert.equal(match("blue in Tags", proxy), true);
  assert.equal(match('"red" not in Tags', proxy), true);
  assert.equal(match('Tags contains "v1"', proxy), true);
  assert.equal(match('Tags not contains "v1"', plain), true);
  assert.equal(match("Tags is empty", plain), true);
  assert.equal(match("Tags is not empty", proxy), true);
  assert.equal(match('"env" in Meta', proxy), true);
  assert.equal(match('Service matches "^web-"', proxy), true);
  assert.equal(match('Service not matches "^web-"', plain), true);
});

test("and binds tighter than or; not and parentheses negate and group", () => {
  assert.equal(match('Service == "web" or Kind == "connect-proxy" and Port == 1', proxy), false);
  assert.equal(match('(Service == "web" or Kind == "connect-proxy") and Port == 21000', proxy), true);
  assert.equal(match('not Kind == "connect-proxy"', plain), true);
  assert.equal(match('not (Kind == "connect-proxy" and "v1" in Tags)', proxy), false);
});

test("bad expressions and unknown selectors are 400 `Failed to create filter`", () => {
  assert.throws(() => parseFilter('Kind = "x"'), FilterError);
  assert.throws(() => parseFilter('(Kind == "x"'), FilterError);
  assert.throws(() => parseFilter('"unterminated'), FilterError);
  assert.throws(
    () => applyFilter(new URLSearchParams({ filter: 'Nope == "x"' }), [plain], ["ID", "Service"]),
    (err: unknown) => err instanceof HttpError && err.status === 400 && err.message.startsWith("Failed to create filter: "),
  );
  assert.deepEqual(applyFilter(new URLSearchParams({ filter: 'Service == "web"' }), [plain, proxy], ["Service"]), [plain]);
  assert.deepEqual(applyFilter(new URLSearchParams(), [plain, proxy]), [plain, proxy]);
});
