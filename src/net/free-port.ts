import { createServer } from "node:net";
import { ConfigError } from "./config-error.js";

/** True when `host:port` can be bound right now (the port is free on this host). */
export function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * The lowest port in [min, max] that is free on `host`, as the agent picks sidecar ports (spec §6.2) but
 * checked against this host's real sockets. Throws ConfigError naming `field` when none is free.
 */
export async function findFreePort(host: string, min: number, max: number, field: string): Promise<number> {
  for (let port = min; port <= max; port++) {
    if (await canBind(host, port)) return port;
  }
  throw new ConfigError(field, `no free port in ${min}–${max} on ${host}; widen the range or pass -listen HOST:PORT`);
}

/** A port the OS reports free on `host` right now (bind port 0, read it, close). Racy by nature: for demos and tests. */
export function ephemeralPort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host, port: 0 }, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
