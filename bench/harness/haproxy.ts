// The haproxy path: two haproxy processes (nbthread 1 each) with the dev agent's certificates.
//   client haproxy: TCP frontends → backends `ssl crt client.pem ca-file ca.pem verify required`
//   server haproxy: `bind … ssl crt server.pem ca-file ca.pem verify required` → the apps
// haproxy verifies the chain to the Connect roots in both directions, as our sidecars do; it makes
// no authorization decision (our server sidecar also checks the intention). Both resume TLS
// sessions on the client side (haproxy's default, our upstream's too).
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildHandle, ProcessGroup } from "./children.js";
import type { Target } from "./http-conn.js";
import { pickFreePort } from "../../src/net/index.js";
import { waitForBulk, waitForHttp, type LeafPems } from "./mesh.js";

export interface HaproxyPair {
  client: ChildHandle;
  server: ChildHandle;
  http: Target;
  bulk: Target;
  /**
   * A fresh server-side haproxy (the start-up measurement): the server's config on new ports,
   * written and checked; returns how to launch it and its TLS frontend. The caller stops it.
   */
  prepareServer(): Promise<{ launch: () => ChildHandle; tls: Target }>;
  close(): Promise<void>;
}

export interface HaproxyOptions {
  group: ProcessGroup;
  haproxyPath: string;
  cpus: string | undefined;
  app: { http: number; bulk: number };
  /** Private temp dir (0700); removed by the caller at exit. */
  tmpDir: string;
  clientLeaf: LeafPems;
  serverLeaf: LeafPems;
  readyTimeoutMs: number;
  /** "http": the HTTP frontends parse (`mode http`, keep-alive both sides), as our HTTP mode does. Default "tcp". */
  mode?: "tcp" | "http";
}

const LOOPBACK = "127.0.0.1";

const GLOBAL = (maxconn: number, mode: "tcp" | "http"): string => `global
  nbthread 1
  maxconn ${maxconn}
  tune.ssl.default-dh-param 2048

defaults
  mode ${mode}
  timeout connect 5s
  timeout client 1h
  timeout server 1h
${mode === "http" ? "  option http-keep-alive\n  timeout http-keep-alive 1h\n" : ""}`;

/** Writes the PEMs and both configs, checks them with `haproxy -c`, starts both and waits for traffic. */
export async function startHaproxyPair(o: HaproxyOptions): Promise<HaproxyPair> {
  const ca = join(o.tmpDir, "ca.pem");
  const clientPem = join(o.tmpDir, "client.pem");
  const serverPem = join(o.tmpDir, "server.pem");
  writeFileSync(ca, o.clientLeaf.caPem, { mode: 0o600 });
  // haproxy `crt`: certificate (chain) and private key in one file.
  writeFileSync(clientPem, `${o.clientLeaf.certPem.trim()}\n${o.clientLeaf.keyPem.trim()}\n`, { mode: 0o600 });
  writeFileSync(serverPem, `${o.serverLeaf.certPem.trim()}\n${o.serverLeaf.keyPem.trim()}\n`, { mode: 0o600 });

  const ports = { clientHttp: await pickFreePort(), clientBulk: await pickFreePort(), serverHttp: await pickFreePort(), serverBulk: await pickFreePort() };
  const tlsOut = `ssl crt ${clientPem} ca-file ${ca} verify required`;
  const tlsIn = `ssl crt ${serverPem} ca-file ${ca} verify required`;
  const mode = o.mode ?? "tcp";
  const suffix = mode === "http" ? "-http" : "";
  const serverConfig = (http: number, bulk: number): string => `${GLOBAL(8000, mode)}
frontend http_tls
  bind ${LOOPBACK}:${http} ${tlsIn}
  default_backend app

backend app
  server app ${LOOPBACK}:${o.app.http}

frontend bulk_tls
  mode tcp
  bind ${LOOPBACK}:${bulk} ${tlsIn}
  default_backend bulk_app

backend bulk_app
  mode tcp
  server bulk ${LOOPBACK}:${o.app.bulk}
`;
  const writeChecked = (name: string, cfg: string): string => {
    const file = join(o.tmpDir, name);
    writeFileSync(file, cfg);
    const check = spawnSync(o.haproxyPath, ["-c", "-q", "-f", file], { encoding: "utf8", timeout: 10_000 });
    if (check.status !== 0) throw new Error(`haproxy rejected ${file}:\n${check.stdout}${check.stderr}`);
    return file;
  };
  const clientCfg = `${GLOBAL(8000, mode)}
frontend http_in
  bind ${LOOPBACK}:${ports.clientHttp}
  default_backend http_out

backend http_out
  server server ${LOOPBACK}:${ports.serverHttp} ${tlsOut}

frontend bulk_in
  mode tcp
  bind ${LOOPBACK}:${ports.clientBulk}
  default_backend bulk_out

backend bulk_out
  mode tcp
  server bulk ${LOOPBACK}:${ports.serverBulk} ${tlsOut}
`;
  const serverFile = writeChecked(`haproxy-server${suffix}.cfg`, serverConfig(ports.serverHttp, ports.serverBulk));
  const clientFile = writeChecked(`haproxy-client${suffix}.cfg`, clientCfg);
  const start = (name: string, file: string): ChildHandle =>
    o.group.spawn({ name, cmd: o.haproxyPath, args: ["-db", "-f", file], cpus: o.cpus });
  const server = start(`haproxy-server${suffix}`, serverFile);
  const client = start(`haproxy-client${suffix}`, clientFile);
  const http = { host: LOOPBACK, port: ports.clientHttp };
  const bulk = { host: LOOPBACK, port: ports.clientBulk };
  const context = (): string => `${client.tail()}\n${server.tail()}`;
  try {
    await waitForHttp(http, o.readyTimeoutMs, context);
    await waitForBulk(bulk, o.readyTimeoutMs, context);
  } catch (err) {
    await Promise.all([client.stop(2000), server.stop(2000)]);
    throw err;
  }
  return {
    client,
    server,
    http,
    bulk,
    prepareServer: async () => {
      const fresh = { http: await pickFreePort(LOOPBACK), bulk: await pickFreePort(LOOPBACK) };
      const file = writeChecked("haproxy-fresh-server.cfg", serverConfig(fresh.http, fresh.bulk));
      return { launch: () => start("haproxy-fresh-server", file), tls: { host: LOOPBACK, port: fresh.http } };
    },
    close: async () => {
      await Promise.all([client.stop(3000), server.stop(3000)]);
    },
  };
}
