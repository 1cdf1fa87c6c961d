// parseHostPort, parseGoDuration and isLoopbackHost on hostile text: a value or a ConfigError
// naming the field the caller gave, never another throw; well-formed input round-trips.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ConfigError, formatGoDuration, isLoopbackHost, parseGoDuration, parseHostPort, tryParseGoDuration } from "../../src/net/index.js";
import { RUNS, expectOnly } from "./arbitraries.js";

const hostPortish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc
    .tuple(
      fc.oneof(fc.ipV4(), fc.ipV6().map((a) => `[${a}]`), fc.ipV6(), fc.domain(), fc.string({ maxLength: 10 }), fc.constant("")),
      fc.constantFrom(":", "::", "", ":-", "]:"),
      fc.oneof(fc.nat({ max: 70000 }).map(String), fc.string({ maxLength: 6 }), fc.constant("")),
    )
    .map(([h, sep, p]) => h + sep + p),
);

test("fuzz: parseHostPort returns a host and a port in range, or throws ConfigError naming the field", () => {
  fc.assert(
    fc.property(hostPortish, (text) => {
      const r = expectOnly(() => parseHostPort(text, "listen"), ConfigError, (err) => {
        assert.equal(err.field, "listen");
        assert.equal(err.code, "config");
        assert.ok(err.message.startsWith("listen: "));
      });
      if (r.ok) {
        assert.ok(Number.isInteger(r.value.port) && r.value.port >= 0 && r.value.port <= 65535);
        assert.ok(r.value.host.length > 0);
        assert.ok(!r.value.host.startsWith("["), "brackets are stripped");
      }
    }),
    { numRuns: RUNS * 2, examples: [["[::1"], ["[::1]"], ["[]:1"], [":"], ["a:99999"], ["a:+1"], ["a: 1"]] },
  );
});

test("fuzz: parseHostPort round-trips IPv4, bracketed IPv6 and DNS names with any port", () => {
  const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
  fc.assert(
    fc.property(host, fc.nat({ max: 65535 }), (h, port) => {
      const text = h.includes(":") ? `[${h}]:${port}` : `${h}:${port}`;
      assert.deepEqual(parseHostPort(text, "f"), { host: h, port });
    }),
    { numRuns: RUNS },
  );
});

test("fuzz: isLoopbackHost never throws", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.ipV6(), fc.ipV4(), fc.ipV6().map((a) => `[${a}]`)), (h) => {
      assert.equal(typeof isLoopbackHost(h), "boolean");
    }),
    { numRuns: RUNS },
  );
  for (const h of ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "0:0:0:0:0:0:0:1", "LOCALHOST", "localhost.", "::ffff:127.0.0.1"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["128.0.0.1", "::2", "::ffff:10.0.0.1", "localhost.example", "0.0.0.0", "::", ""]) assert.equal(isLoopbackHost(h), false, h);
});

const durationish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc
    .array(
      fc.tuple(
        fc.oneof(fc.nat().map(String), fc.constantFrom("1.5", ".5", "5.", ".", "", "1e3", "9".repeat(400))),
        fc.constantFrom("ns", "us", "µs", "μs", "ms", "s", "m", "h", "", "d", "S", " "),
      ),
      { maxLength: 4 },
    )
    .chain((parts) => fc.constantFrom("", "-", "+", " ").map((sign) => sign + parts.map(([n, u]) => n + u).join(""))),
);

test("fuzz: parseGoDuration returns a finite number of milliseconds or throws ConfigError naming the field", () => {
  fc.assert(
    fc.property(durationish, (text) => {
      const r = expectOnly(() => parseGoDuration(text, "drain-timeout"), ConfigError, (err) => assert.equal(err.field, "drain-timeout"));
      if (r.ok) assert.ok(Number.isFinite(r.value), `${JSON.stringify(text)} → ${r.value}`);
      assert.equal(r.ok, tryParseGoDuration(text.trim()) !== undefined);
    }),
    { numRuns: RUNS * 2, examples: [["0"], ["-0"], ["1"], ["1.s"], [".s"], [`${"9".repeat(400)}h`], ["1h1h"], ["-"]] },
  );
});

test("fuzz: formatGoDuration output parses back to the same milliseconds", () => {
  fc.assert(
    fc.property(fc.integer({ min: -1e12, max: 1e12 }), (ms) => {
      const back = parseGoDuration(formatGoDuration(ms), "d");
      assert.ok(Math.abs(back - ms) < 1e-6, `${ms} → ${formatGoDuration(ms)} → ${back}`);
    }),
    { numRuns: RUNS },
  );
});
