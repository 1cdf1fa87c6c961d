// RSS after rounds of mTLS handshakes, client and server in this one process, each side reading the
// peer's certificate as the sidecars do (getPeerX509Certificate): full handshakes against resumed
// ones. On every Node tried (20.20, 22.23, 23.11, 24.0, 24.21) a full handshake whose peer
// certificate was read leaves the certificates allocated: ~9-10 KB more RSS per handshake, round
// after round, where resumed handshakes level off after the second round. (Without the read,
// heaptrack shows none kept.) The public listener lets refused peers keep their session ticket for
// this reason (src/listener/public-listener.ts, TICKETED_REFUSALS).
//
//   node --expose-gc dist/bench/micro/peer-cert-retention.bench.js [handshakes-per-round=2000] [rounds=6]
import { once } from "node:events";
import { connect, createServer, createSecureContext } from "node:tls";
import { makeCa } from "../../test/certs/fixtures.js";

const N = Number(process.argv[2] ?? 2000);
const ROUNDS = Math.max(4, Number(process.argv[3] ?? 6));
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

const ca = await makeCa();
const server = await ca.issueLeaf({ service: "api" });
const client = await ca.issueLeaf({ service: "web" });
const srv = createServer({ key: server.keyPem, cert: server.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true }, (s) => {
  s.on("error", () => {});
  s.getPeerX509Certificate();
  s.resume();
  s.on("end", () => s.end());
});
srv.listen(0, "127.0.0.1");
await once(srv, "listening");
const port = (srv.address() as { port: number }).port;
const ctx = createSecureContext({ key: client.keyPem, cert: client.certPem, ca: [ca.certPem] });

const rssMiB = (): number => {
  gc();
  gc();
  return Math.round(process.memoryUsage().rss / 1048576);
};

async function rounds(resume: boolean): Promise<number[]> {
  let session: Buffer | undefined;
  const out: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < N; i++) {
      const s = connect({ port, host: "127.0.0.1", secureContext: ctx, checkServerIdentity: () => undefined, ...(resume && session ? { session } : {}) });
      s.on("error", () => {});
      s.on("session", (b: Buffer) => void (session = b));
      await once(s, "secureConnect");
      s.getPeerX509Certificate();
      s.end();
      s.resume();
      await once(s, "close");
    }
    out.push(rssMiB());
  }
  return out;
}

console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}; ${N} handshakes per round`);
for (const resume of [true, false]) {
  const rss = await rounds(resume);
  // The first rounds fill allocator pools and V8's pages; the growth that stays is after them.
  const perHandshakeKiB = ((rss.at(-1)! - rss[2]!) * 1024) / ((ROUNDS - 3) * N);
  console.log(`${resume ? "resumed" : "full   "}  RSS MiB after each round: ${rss.join(" ")}  (≈ ${perHandshakeKiB.toFixed(1)} KiB per handshake after round 3)`);
}
srv.close();
