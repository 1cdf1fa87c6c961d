import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { serverTlsOptions } from "../../src/listener/tls-options.js";
import { test } from "../support/leaks.js";
import { captureLog, makeMesh } from "./harness.js";

// OpenSSL 3's default security level (1) refuses TLS < 1.2 by itself, so a listener test cannot tell
// whether our minVersion does anything. A host whose OpenSSL configuration lowers the level (some
// distributions' openssl.cnf; any context asking @SECLEVEL=0) has only minVersion left: emulate that
// host by running our exact server options at level 0, with Node's default minimum lowered as well.
test("at OpenSSL security level 0 our minimum version alone refuses TLS 1.0 and 1.1 (protocol_version, not a cipher mismatch)", async (t) => {
  const nodeDefault = tls.DEFAULT_MIN_VERSION; // Node's own floor (TLSv1.2) would hide ours too
  tls.DEFAULT_MIN_VERSION = "TLSv1";
  t.after(() => void (tls.DEFAULT_MIN_VERSION = nodeDefault));
  const mesh = await makeMesh(captureLog().log);
  t.after(() => mesh.store.close());
  const opts = serverTlsOptions(mesh.store.current()!, randomBytes(48));
  const server = tls.createServer({ ...opts, ciphers: `${String(opts.ciphers)}:@SECLEVEL=0` });
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  for (const version of ["TLSv1", "TLSv1.1"] as const) {
    const sock = tls.connect({ host: "127.0.0.1", port, minVersion: version, maxVersion: version, ciphers: "ALL@SECLEVEL=0", rejectUnauthorized: false });
    const outcome = await new Promise<string>((resolve) => {
      sock.once("secureConnect", () => resolve("connected"));
      sock.once("error", (e: NodeJS.ErrnoException) => resolve(String(e.code)));
    });
    sock.destroy();
    assert.equal(outcome, "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", version);
  }
});
