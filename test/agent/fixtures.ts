// Small real HTTP(S) servers standing in for the Consul agent, and certificates generated at
// run time (no committed keys).
import "reflect-metadata"; // @peculiar/x509 (tsyringe) needs the Reflect metadata API
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { pino } from "pino";
import type { AgentConfig } from "../../src/agent/index.js";

export const silentLog = pino({ level: "silent" });

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void | Promise<void>;

export interface TestServer {
  /** host:port, or the socket path for unix servers. */
  address: string;
  port: number;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  /** Resolves once at least `n` requests have arrived (an event, not a poll). */
  waitForRequests(n: number): Promise<void>;
  close(): Promise<void>;
}

type Listenable = http.Server | https.Server;

async function serve(t: TestContext, server: Listenable, handler: Handler, listenOn: number | string): Promise<TestServer> {
  const requests: TestServer["requests"] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const wake = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (requests.length >= w.n) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      wake();
      Promise.resolve(handler(req, res, body)).catch((err: unknown) => {
        res.statusCode = 599;
        res.end(String(err));
      });
    });
  });
  if (typeof listenOn === "string") server.listen(listenOn);
  else server.listen(listenOn, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? (addr as AddressInfo).port : 0;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  const waitForRequests = (n: number) =>
    requests.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
  return { address: typeof listenOn === "string" ? listenOn : `127.0.0.1:${port}`, port, requests, waitForRequests, close };
}

/** A plain HTTP server on 127.0.0.1, port 0; closed after the test. */
export function startHttpServer(t: TestContext, handler: Handler): Promise<TestServer> {
  return serve(t, http.createServer(), handler, 0);
}

/** An HTTP server on a unix socket in a fresh temp dir; closed after the test. */
export async function startUnixServer(t: TestContext, handler: Handler): Promise<TestServer> {
  const dir = await tempDir(t);
  return serve(t, http.createServer(), handler, join(dir, "agent.sock"));
}

/** An HTTPS server that requires a client certificate issued by `pki.caPem`. */
export function startHttpsServer(t: TestContext, pki: Pki, handler: Handler): Promise<TestServer> {
  const server = https.createServer({
    key: pki.serverKeyPem,
    cert: pki.serverCertPem,
    ca: pki.caPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  return serve(t, server, handler, 0);
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "agent-test-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a JSON answer with optional headers. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(text);
}

export function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

export function httpConfig(server: TestServer, extra: Partial<AgentConfig> = {}): AgentConfig {
  return {
    address: { scheme: "http", host: "127.0.0.1", port: server.port, pathPrefix: "" },
    tls: { verify: true },
    token: "",
    ...extra,
  };
}

export interface Pki {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** The same material as files in a temp dir. */
  files: { ca: string; clientCert: string; clientKey: string; dir: string };
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

/** A CA, a server cert for 127.0.0.1 and "agent.consul.test", and a client cert, all fresh. */
export async function makePki(t: TestContext): Promise<Pki> {
  x509.cryptoProvider.set(crypto);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 3_600_000);
  const caKeys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=agent test CA",
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = async (cn: string, eku: string, san: x509.JsonGeneralNames) => {
    const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      subject: `CN=${cn}`,
      issuer: ca.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([eku]),
        new x509.SubjectAlternativeNameExtension(san),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    return { certPem: cert.toString("pem"), keyPem: await keyPem(keys.privateKey) };
  };
  const server = await leaf("agent", x509.ExtendedKeyUsage.serverAuth, [
    { type: "ip", value: "127.0.0.1" },
    { type: "dns", value: "agent.consul.test" },
  ]);
  const client = await leaf("sidecar", x509.ExtendedKeyUsage.clientAuth, [{ type: "dns", value: "sidecar" }]);
  const dir = await tempDir(t);
  const files = { ca: join(dir, "ca.pem"), clientCert: join(dir, "client.pem"), clientKey: join(dir, "client-key.pem"), dir };
  await writeFile(files.ca, ca.toString("pem"));
  await writeFile(files.clientCert, client.certPem);
  await writeFile(files.clientKey, client.keyPem, { mode: 0o600 });
  return {
    caPem: ca.toString("pem"),
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    clientCertPem: client.certPem,
    clientKeyPem: client.keyPem,
    files,
  };
}
