// `connect-sidecar demo` (what `npm start` runs): a dev agent with ACLs on and default deny that loads
// web and api from the service definition files in examples/consul.d (their sidecars on ports the agent
// assigns from 21000–21255), the two loopback apps, one sidecar child process per app started as a user
// would, an allow intention web → api, one request shown flowing, then a summary of what to try next.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createAgentClient, resolveAgentConfig, type AgentClient } from "../agent/index.js";
import { startDevAgent, type DevAgent, type DevAgentOptions, type LoadedConfig } from "../dev-agent/index.js";
import { delay } from "../net/index.js";
import type { Logger } from "../ops/index.js";
import { startApiApp, startWebApp } from "./apps.js";
import { prepareDefinitions, SIDECAR_RANGE } from "./definitions.js";
import { spawnSidecar, type SidecarProcess } from "./sidecar-process.js";

export interface DemoOptions {
  /** The dev agent's address; default 127.0.0.1:8500 when free, else 127.0.0.1:0. */
  httpAddr: string | undefined;
  /** Passed to the sidecars. */
  logLevel: string;
}

export interface DemoDeps {
  log: Logger;
  /** The CLI (dist/bundle/cli.js, or dist/src/cli.js): the sidecars run it as child processes. */
  cliPath: string;
  /** Where the summary and the sidecars' log lines go (default: stdout). */
  print?: (line: string) => void;
  /** Resolves when the demo should stop (default: SIGINT or SIGTERM). */
  stopSignal?: Promise<unknown>;
}

const SIDECAR_STOP_GRACE_MS = 10_000;
const FIRST_REQUEST_TIMEOUT_MS = 60_000;

/** Runs the demo until `stopSignal` (Ctrl-C); stops everything it started. Resolves 0, or 1 when start-up failed. */
export async function runDemo(opts: DemoOptions, deps: DemoDeps): Promise<number> {
  const { log } = deps;
  const print = deps.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const stopSignal = deps.stopSignal ?? waitForSignal();
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn({ err }, "demo cleanup step failed");
      }
    }
  };

  try {
    const tmp = mkdtempSync(join(tmpdir(), "connect-sidecar-demo-"));
    cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));

    const defs = await prepareDefinitions(tmp, 2);
    for (const note of defs.notes) print(`note: ${note}`);
    const api = await startApiApp(defs.ports.api);
    cleanups.push(() => api.close());
    const upstreamPort = defs.ports.webUpstream;
    const web = await startWebApp(defs.ports.web, upstreamPort);
    cleanups.push(() => web.close());

    const agent = await startAgent(opts.httpAddr, log, {
      configSources: [{ flag: "config-dir", path: defs.dir }],
      sidecarMinPort: defs.sidecarRange.min,
      sidecarMaxPort: defs.sidecarRange.max,
    });
    cleanups.push(() => agent.stop());
    log.info({ address: agent.address, trustDomain: agent.trustDomain }, `dev agent on ${agent.httpUrl} (ACLs on, default deny)`);
    for (const line of registeredLines(agent.loadedConfig())) print(line);

    // As the dev agent command does: SIGHUP reloads the definitions (edit a file in defs.dir, then kill -HUP).
    const reload = (): void =>
      void agent.reloadConfig().then(
        (loaded) => registeredLines(loaded).forEach((l) => print(`reloaded: ${l}`)),
        (err: unknown) => print(`reload failed, the previous definitions stay: ${err instanceof Error ? err.message : String(err)}`),
      );
    process.on("SIGHUP", reload);
    cleanups.push(() => void process.off("SIGHUP", reload));

    const mgmt = createAgentClient(resolveAgentConfig({ httpAddr: agent.address, token: agent.managementToken }, {}), { log: log.child({ component: "demo-client" }) });
    cleanups.push(() => mgmt.close());

    const sidecars: SidecarProcess[] = [];
    cleanups.push(() => Promise.all(sidecars.map((s) => s.stop(SIDECAR_STOP_GRACE_MS))).then(() => undefined));
    for (const name of ["api", "web"]) {
      const tokenFile = join(tmp, `${name}.token`);
      writeFileSync(tokenFile, `${await createServiceToken(mgmt, name)}\n`, { mode: 0o600 });
      chmodSync(tokenFile, 0o600);
      sidecars.push(
        spawnSidecar({
          name: `${name}-sidecar`,
          cliPath: deps.cliPath,
          args: ["proxy", "-sidecar-for", name, "-http-addr", agent.address, "-token-file", tokenFile, "-log-level", opts.logLevel, "-log-json"],
          onLine: print,
        }),
      );
    }
    const [apiSidecar, webSidecar] = sidecars as [SidecarProcess, SidecarProcess];
    const [apiAdmin, webAdmin] = await Promise.race([
      Promise.all([apiSidecar.ready, webSidecar.ready]),
      stopSignal.then(() => undefined),
    ]) ?? [];
    if (apiAdmin === undefined || webAdmin === undefined) {
      await cleanup();
      return 0;
    }

    // The sidecars' default TCP checks probed before the sidecars listened; a reload (what SIGHUP does)
    // registers the files again and probes them now instead of at their next 10 s interval.
    await agent.reloadConfig();
    await setIntention(mgmt, "allow");
    log.info("intention web → api: allow");
    const first = await firstRequest(web.port, stopSignal);
    if (first === undefined) {
      await cleanup();
      return 0;
    }
    print(`web → api through both sidecars answered: ${first}`);

    const intentionUrl = `${agent.httpUrl}/v1/connect/intentions/exact?source=web&destination=api`;
    const lines = [
      "",
      `==> demo ready: web → web's sidecar (127.0.0.1:${upstreamPort}) → mTLS → api's sidecar → api`,
      "",
      `  dev agent:       ${agent.httpUrl}   (management token: ${agent.managementToken})`,
      `  definitions:     ${defs.dir}   (kill -HUP ${process.pid} reloads them)`,
      ...registeredLines(agent.loadedConfig()).map((l) => `  ${l}`),
      `  web app:         http://127.0.0.1:${web.port}/`,
      `  api app:         http://127.0.0.1:${api.port}/   (only its sidecar should call it)`,
      `  sidecar pids:    web=${webSidecar.pid} api=${apiSidecar.pid}`,
      `  metrics:         web ${webAdmin.adminUrl}/metrics   api ${apiAdmin.adminUrl}/metrics`,
      `  status:          ${webAdmin.adminUrl}/status   ${apiAdmin.adminUrl}/status`,
      "  sidecar logs:    below, prefixed [web-sidecar] / [api-sidecar]; api's logs the caller's SPIFFE ID",
      "",
      "Try:",
      `  curl -s http://127.0.0.1:${web.port}/`,
      `  curl -sN http://127.0.0.1:${web.port}/stream        # a live connection: one line per second`,
      "  # in another terminal, deny web → api and watch the stream end:",
      `  curl -X PUT -H "X-Consul-Token: ${agent.managementToken}" -d '{"Action":"deny"}' "${intentionUrl}"`,
      `  curl -s http://127.0.0.1:${web.port}/               # now refused`,
      `  curl -X PUT -H "X-Consul-Token: ${agent.managementToken}" -d '{"Action":"allow"}' "${intentionUrl}"`,
      "",
      "Ctrl-C stops the sidecars, the apps and the dev agent.",
      "",
    ];
    for (const line of lines) print(line);

    await stopSignal;
    print("stopping the demo: draining the sidecars, then the apps and the dev agent (Ctrl-C again to force)");
    await cleanup();
    print("demo stopped");
    return 0;
  } catch (err) {
    log.error({ err }, "the demo failed to start");
    await cleanup();
    return 1;
  }
}

async function startAgent(httpAddr: string | undefined, log: Logger, extra: DevAgentOptions): Promise<DevAgent> {
  const common = { ...extra, aclsEnabled: true, aclDefaultPolicy: "deny" as const, log: log.child({ component: "dev-agent" }) };
  if (httpAddr !== undefined) return startDevAgent({ ...common, httpAddr });
  try {
    return await startDevAgent({ ...common, httpAddr: "127.0.0.1:8500" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    log.info("127.0.0.1:8500 is taken; the dev agent takes a free port");
    return startDevAgent({ ...common, httpAddr: "127.0.0.1:0" });
  }
}

/** One line per registered service: its file, port, and its sidecar's port (and whether that is in the range). */
function registeredLines(loaded: LoadedConfig): string[] {
  return loaded.files.flatMap((f) =>
    f.services.map((s) => {
      const sc = s.sidecar;
      const where = sc === undefined ? "" : sc.port >= SIDECAR_RANGE.min && sc.port <= SIDECAR_RANGE.max ? "" : " (outside 21000–21255)";
      return `registered ${s.id} (port ${s.port})${sc ? ` with ${sc.id} on port ${sc.port}${where}` : ""}   from ${f.path}`;
    }),
  );
}

/** A token that holds only the service identity `name` (spec §11.3). Returns its SecretID. */
async function createServiceToken(mgmt: AgentClient, name: string): Promise<string> {
  const res = await mgmt.request({
    method: "PUT",
    path: "/v1/acl/token",
    body: { Description: `${name} sidecar (demo)`, ServiceIdentities: [{ ServiceName: name }] },
  });
  const secret = (res.body as { SecretID?: unknown } | undefined)?.SecretID;
  if (typeof secret !== "string") throw new Error("the dev agent's token answer has no SecretID");
  return secret;
}

async function setIntention(mgmt: AgentClient, action: "allow" | "deny"): Promise<void> {
  await mgmt.request({
    method: "PUT",
    path: "/v1/connect/intentions/exact",
    query: { source: "web", destination: "api" },
    body: { Action: action },
  });
}

// The first request waits for api's sidecar to pass its listening check (discovery uses passing only).
async function firstRequest(webPort: number, stopSignal: Promise<unknown>): Promise<string | undefined> {
  let stopped = false;
  void stopSignal.then(() => (stopped = true));
  const deadline = Date.now() + FIRST_REQUEST_TIMEOUT_MS;
  let last = "";
  while (!stopped) {
    try {
      const res = await fetch(`http://127.0.0.1:${webPort}/`, { signal: AbortSignal.timeout(10_000) });
      last = await res.text();
      if (res.ok) return last.trim();
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`web → api did not answer within ${FIRST_REQUEST_TIMEOUT_MS / 1000}s: ${last}`);
    await delay(250);
  }
  return undefined;
}


// The first Ctrl-C stops everything in order; a second one exits at once (the sidecar children are
// killed by their process "exit" hook).
function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: NodeJS.Signals): void => {
      if (seen) process.exit(1);
      seen = true;
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}
