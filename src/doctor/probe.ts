// Live probes of this host: does a TCP port answer, can a port be bound, who holds it. Every
// probe targets this machine only (its loopback or its own interface addresses), is bounded
// by a timeout, and leaves nothing open.
import { createServer, connect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { readFileSync } from "node:fs";
import type { NetworkInterfaceInfo } from "node:os";

export type TcpProbe = "open" | "refused" | "timeout" | "unreachable";

/**
 * Tries one TCP connection to host:port; resolves how it went, never rejects. An answered
 * connection is closed politely (FIN, and whatever the app sends is read) so the app sees an
 * ordinary client leave, not a reset.
 */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<TcpProbe> {
  return new Promise((resolve) => {
    let result: TcpProbe | undefined;
    const sock: Socket = connect({ host, port });
    const finish = (r: TcpProbe) => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on("error", () => undefined);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(result ?? "timeout"), timeoutMs);
    sock.once("connect", () => {
      result = "open";
      sock.resume();
      sock.end();
    });
    sock.once("close", () => finish(result ?? "unreachable"));
    sock.on("error", (err: NodeJS.ErrnoException) => {
      result ??= err.code === "ECONNREFUSED" ? "refused" : "unreachable";
    });
  });
}

export type BindProbe = "free" | "in_use" | "no_access" | "not_local" | "error";

/** Binds host:port for an instant and lets go: "free" when it could, else why not. */
export function probeBind(host: string, port: number): Promise<BindProbe> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (err: NodeJS.ErrnoException) => {
      resolve(
        err.code === "EADDRINUSE" ? "in_use" : err.code === "EACCES" ? "no_access" : err.code === "EADDRNOTAVAIL" ? "not_local" : "error",
      );
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve("free")));
  });
}

/**
 * The URI SAN that a TLS server on host:port presents, or why none was seen. The client offers
 * `cert`/`key` (the service's own leaf) so an mTLS listener completes the handshake.
 */
export function probePeerUri(
  host: string,
  port: number,
  tls: { cert?: string; key?: string; ca?: string[] },
  timeoutMs: number,
): Promise<{ uri: string | undefined; error: string | undefined }> {
  return new Promise((resolve) => {
    let seen: { uri: string | undefined; error: string | undefined } | undefined;
    const sock: TLSSocket = tlsConnect({
      host,
      port,
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      ...(tls.ca ? { ca: tls.ca } : {}),
      rejectUnauthorized: false, // we only read what it presents; trust is judged by the URI
      checkServerIdentity: () => undefined,
    });
    const finish = () => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on("error", () => undefined);
      sock.destroy();
      resolve(seen ?? { uri: undefined, error: "no TLS answer in time" });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.once("secureConnect", () => {
      const san = sock.getPeerCertificate().subjectaltname ?? "";
      const uri = /URI:([^,\s]+)/.exec(san)?.[1];
      seen = { uri, error: uri === undefined ? "the certificate has no URI SAN" : undefined };
      sock.resume();
      sock.end(); // leave like an ordinary client
    });
    sock.once("close", finish);
    sock.on("error", (err: NodeJS.ErrnoException) => {
      seen ??= { uri: undefined, error: err.code ?? err.message };
    });
  });
}

/**
 * This host's own addresses that are not loopback, from os.networkInterfaces(). IPv6 link-local
 * addresses are left out: they need a zone and are not how services are reached.
 */
export function nonLoopbackAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string[] {
  const out: string[] = [];
  for (const infos of Object.values(interfaces)) {
    for (const i of infos ?? []) {
      if (i.internal) continue;
      if (i.family === "IPv6" && /^fe[89ab]/i.test(i.address)) continue;
      if (!out.includes(i.address)) out.push(i.address);
    }
  }
  return out;
}

/** `host:port` with IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The ports this host hands out to outgoing connections, minus reserved ones (Linux /proc); undefined elsewhere. */
export interface EphemeralPorts {
  min: number;
  max: number;
  reserved: (port: number) => boolean;
}

/** Reads net.ipv4.ip_local_port_range and ip_local_reserved_ports; undefined when unreadable. */
export function readEphemeralPorts(): EphemeralPorts | undefined {
  try {
    const [min, max] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (!Number.isInteger(min) || !Number.isInteger(max)) return undefined;
    let reservedText = "";
    try {
      reservedText = readFileSync("/proc/sys/net/ipv4/ip_local_reserved_ports", "utf8").trim();
    } catch {
      // absent: nothing reserved
    }
    const spans = reservedText === "" ? [] : reservedText.split(",").map((p) => p.split("-").map(Number) as [number, number?]);
    return {
      min: min!,
      max: max!,
      reserved: (port) => spans.some(([a, b]) => port >= a && port <= (b ?? a)),
    };
  } catch {
    return undefined;
  }
}
