// CPU per resumed mTLS handshake and per MB of TLS traffic, client and server in this one process,
// for the listener's server options with key-exchange groups and TLS 1.3 suite orders varied.
// Certificates are made at run time (EC P-256, Consul-shaped) by the test CA fixture.
//
//   node dist/bench/micro/tls-handshake.bench.js [handshakes=600] [mib=64]
import { once } from "node:events";
import { connect, createServer, createSecureContext, type TLSSocket } from "node:tls";
import { makeCa } from "../../test/certs/fixtures.js";
import { TLS12_CIPHERS } from "../../src/listener/index.js";

const N = Number(process.argv[2] ?? 600);
const MIB = Number(process.argv[3] ?? 64);
const DEFAULT_13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
const AES128_FIRST = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

interface Variant { name: string; groups: string | undefined; suites: string }
const VARIANTS: Variant[] = [
  { name: "openssl default groups, AES-256 first", groups: undefined, suites: DEFAULT_13 },
  { name: "X25519 first,           AES-256 first", groups: "X25519:P-256:X25519MLKEM768", suites: DEFAULT_13 },
  { name: "X25519 first,           AES-128 first", groups: "X25519:P-256:X25519MLKEM768", suites: AES128_FIRST },
];

const cpuUs = (): number => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function run(v: Variant, pems: { key: string; cert: string; ca: string[] }): Promise<void> {
  const server = createServer({
    key: pems.key, cert: pems.cert, ca: pems.ca, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2",
    ciphers: `${v.suites}:${TLS12_CIPHERS}`, honorCipherOrder: true, ...(v.groups ? { ecdhCurve: v.groups } : {}),
  }, (s) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => (d.length === 1 ? s.end(d) : undefined));
    s.on("end", () => s.end());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const ctx = createSecureContext({ key: pems.key, cert: pems.cert, ca: pems.ca, minVersion: "TLSv1.2", ...(v.groups ? { ecdhCurve: v.groups } : {}) });
  let session: Buffer | undefined;
  let reused = 0;
  const dial = (): TLSSocket => {
    const s = connect({ host: "127.0.0.1", port, secureContext: ctx, session, checkServerIdentity: () => undefined });
    s.on("session", (b: Buffer) => void (session = b));
    s.on("error", () => {});
    return s;
  };
  const once1 = async (): Promise<void> => {
    const s = dial();
    await once(s, "secureConnect");
    if (s.isSessionReused()) reused++;
    s.write("x");
    s.resume();
    await once(s, "close");
  };
  for (let i = 0; i < 50; i++) await once1(); // warm up, get a ticket
  reused = 0;
  const t0 = cpuUs();
  const w0 = performance.now();
  for (let i = 0; i < N; i++) await once1();
  const hsUs = (cpuUs() - t0) / N;
  const hsWall = ((performance.now() - w0) * 1000) / N;

  // Bulk: MIB MiB client → server over one connection, 64 KiB writes.
  const s = dial();
  await once(s, "secureConnect");
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const b0 = cpuUs();
  const bw0 = performance.now();
  for (let sent = 0; sent < MIB * 1024 * 1024; sent += chunk.length) if (!s.write(chunk)) await once(s, "drain");
  s.end();
  await once(s, "close");
  const mb = (MIB * 1024 * 1024) / 1e6;
  const bulkUs = (cpuUs() - b0) / mb;
  const bulkMBps = mb / ((performance.now() - bw0) / 1000);
  process.stdout.write(
    `${v.name}: ${hsUs.toFixed(0)} µs CPU per resumed handshake (${reused}/${N} resumed, ${hsWall.toFixed(0)} µs wall); ` +
      `bulk ${bulkUs.toFixed(0)} µs CPU/MB, ${bulkMBps.toFixed(0)} MB/s\n`,
  );
  server.close();
}

const ca = await makeCa();
const leaf = await ca.issueLeaf({ service: "bench" });
const pems = { key: leaf.keyPem, cert: leaf.certPem, ca: [ca.certPem] };
const ROUNDS = Number(process.argv[4] ?? 2);
for (let round = 0; round < ROUNDS; round++) for (const v of VARIANTS) await run(v, pems);
