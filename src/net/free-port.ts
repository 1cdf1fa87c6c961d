import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** True when `host:port` can be bound right now (the port is free on this host). */
export function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * A port free on `host` right now, for a caller that must bind a known port a moment later (demos, tests,
 * the soak). Picked at random in 10000–29999, below the kernel's ephemeral range (ip_local_port_range,
 * 32768–60999 by default) and below the 30000+ sidecar ranges the tests give their dev agents: a port the
 * kernel handed out for port 0 could be taken by any outgoing connection before the caller binds it (seen
 * in CI as EADDRINUSE). Bind-checked; still racy against another picker, as any such helper is.
 */
export async function pickFreePort(host = "127.0.0.1"): Promise<number> {
  const max = Math.min(PICK_MAX, ephemeralLow() - 1);
  for (let i = 0; max > PICK_MIN && i < 100; i++) {
    const port = PICK_MIN + Math.floor(Math.random() * (max - PICK_MIN + 1));
    if (await canBind(host, port)) return port;
  }
  return osPort(host); // a host with an unusual ephemeral range: what the OS gives
}

const PICK_MIN = 10_000;
const PICK_MAX = 29_999;

/** The low end of the kernel's ephemeral port range (Linux), 32768 when it cannot be read. */
export function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function osPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host, port: 0 }, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
