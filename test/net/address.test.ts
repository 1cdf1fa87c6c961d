import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, isLoopbackHost, parseHostPort } from "../../src/net/index.js";

test("parseHostPort reads host:port, bracketed IPv6 and port 0", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:8080", "f"), { host: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseHostPort("localhost:0", "f"), { host: "localhost", port: 0 });
  assert.deepEqual(parseHostPort("web.service.consul:21000", "f"), { host: "web.service.consul", port: 21000 });
  assert.deepEqual(parseHostPort("[::1]:443", "f"), { host: "::1", port: 443 });
  assert.deepEqual(parseHostPort("[2001:db8::8a2e:370:7334]:65535", "f"), { host: "2001:db8::8a2e:370:7334", port: 65535 });
});

test("parseHostPort refuses malformed text with a ConfigError naming the field and the right form", () => {
  for (const bad of ["", "8080", "host", ":8080", "host:", "host:http", "host:65536", "host:-1", "::1:8080",
    "[::1]", "[::1]8080", "[::1:8080", "[not-v6]:80", "bad host:80", "a..b:80", "127.0.0.1:80:80"]) {
    assert.throws(
      () => parseHostPort(bad, "-listen"),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, `${bad}: ${String(err)}`);
        assert.equal(err.code, "config");
        assert.equal(err.field, "-listen");
        assert.match(err.message, /^-listen: /);
        assert.match(err.message, /\[::1\]:8080/); // shows the right form
        return true;
      },
      `accepted ${JSON.stringify(bad)}`,
    );
  }
});

test("isLoopbackHost knows every spelling of loopback and nothing else", () => {
  for (const h of ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "[::1]",
    "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::FFFF:7f00:1", "[::ffff:127.10.0.1]"]) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (const h of ["", "0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "1.127.0.0", "::2", "::ffff:10.0.0.1", "::ffff:8000:1",
    "localhost.example.com", "mylocalhost", "example.com", "fe80::1", "127.0.0.1.nip.io"]) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});
