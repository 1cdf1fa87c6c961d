// Runs the CLI: parses the command line, then runs the command until it ends, and says how it ended
// with the exit code. Every flag error exits 2 without a stack trace.
import { createAgentClient } from "../agent/index.js";
import { ConfigError } from "../net/index.js";
import { createLogger, createMetrics, startIdleMemoryRelease, type Logger } from "../ops/index.js";
import type { DevAgentOptions, LoadedConfig } from "../dev-agent/index.js";
import type { SidecarOptions } from "../sidecar/index.js";
import { parseCommand, type Command } from "./command-line.js";
import { COMMANDS, UsageError } from "./flags.js";
import { packageVersion } from "./version.js";

/** Exit codes: 0 clean, 1 runtime failure (or connections cut at shutdown), 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Runs the CLI: parses, then runs the command until it ends. Resolves with the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let command: Command;
  try {
    command = await parseCommand(argv, env);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      const cmd = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? `${argv[0]} ` : "";
      process.stderr.write(`connect-sidecar: ${err.message}\nRun "connect-sidecar ${cmd}-help" for the flags.\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (command.cmd === "help" || command.cmd === "version") {
    process.stdout.write(`${command.text}\n`);
    return EXIT_OK;
  }
  const log = createLogger(command.cmd === "doctor" ? { ...command.log, fd: 2 } : command.log);
  installCrashHandlers(log);
  log.info(
    // preload: what LD_PRELOAD loaded into the process (a proxy's re-exec preloads jemalloc where the host has it).
    { version: packageVersion(), node: process.versions.node, openssl: process.versions.openssl, command: command.cmd, pid: process.pid, preload: process.env.LD_PRELOAD },
    `connect-sidecar ${command.cmd} starting (node ${process.versions.node}, openssl ${process.versions.openssl})`,
  );
  try {
    switch (command.cmd) {
      case "proxy":
        return await runProxyCommand(command.opts, log);
      case "dev-agent":
        return await runDevAgentCommand(command.opts, log);
      case "doctor": {
        const { runDoctor, formatReport, doctorExitCode } = await import("../doctor/index.js");
        const report = await runDoctor(command.opts, { log, now: Date.now });
        process.stdout.write(formatReport(report, { json: command.json }));
        return doctorExitCode(report);
      }
      case "demo": {
        const { runDemo } = await import("../demo/index.js");
        return await runDemo(command.opts, { log, cliPath: new URL("../cli.js", import.meta.url).pathname });
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error({ field: err.field }, err.message);
      return EXIT_USAGE;
    }
    log.error({ err }, "connect-sidecar failed");
    return EXIT_FAILURE;
  }
}

async function runProxyCommand(opts: SidecarOptions, log: Logger): Promise<number> {
  const { runSidecar, pickRegistrationPort, registrationId } = await import("../sidecar/index.js");
  const src = opts.source;
  if (src.t === "static" && src.listen === undefined && src.pickListenPort !== undefined) {
    const { min, max } = src.pickListenPort;
    // A port neither the agent has given a registered service (spec §6.2) nor this host has in use.
    const agent = createAgentClient(opts.agent, { log });
    try {
      const ownId = registrationId(src.service, src.register?.idSuffix ?? "");
      const { port, assigned } = await pickRegistrationPort(agent, { host: "0.0.0.0", min, max, ownId });
      src.listen = { host: "0.0.0.0", port };
      log.info({ listen: `0.0.0.0:${port}`, range: `${min}-${max}`, assignedByAgent: assigned }, "picked a free public listener port from the sidecar range");
    } finally {
      await agent.close();
    }
  }
  const metrics = createMetrics();
  const sidecar = await runSidecar(opts, { log, metrics, now: Date.now });
  const memoryRelease = opts.idleMemoryRelease === true ? startIdleMemoryRelease(log) : undefined;
  log.info({ metrics: `${sidecar.adminUrl()}/metrics`, ready: `${sidecar.adminUrl()}/ready` }, `admin server listening on ${sidecar.adminUrl()}`);
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals | "graceful_shutdown_path"): void => {
      if (stopping) {
        if (signal === "graceful_shutdown_path") return; // asked again over HTTP: already draining
        log.warn({ signal }, "second signal: exiting now");
        sidecar.destroy();
        return resolve(EXIT_FAILURE);
      }
      stopping = true;
      memoryRelease?.close();
      log.info({ signal, drainTimeoutMs: opts.drainTimeoutMs, shutdownGracePeriodMs: opts.shutdownGracePeriodMs }, "shutting down: draining live connections");
      void sidecar.close(opts.drainTimeoutMs).then(resolve);
    };
    void sidecar.shutdownRequested.then(() => stop("graceful_shutdown_path"));
    const reload = (): void => sidecar.reloadToken();
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    process.on("SIGHUP", reload);
    sidecar.ready.then(
      () => {
        log.info({ admin: sidecar.adminUrl() }, "sidecar ready");
        // Start-up leaves ~5 MB of garbage and pooled V8 pages that an idle sidecar would otherwise
        // keep for good (they are under the release's growth threshold): give them back after 2 s of
        // quiet, or at the first quiet interval after that.
        memoryRelease?.checkAfter(2_000, { anyGrowth: true });
      },
      (err: unknown) => {
        if (stopping) return;
        stopping = true;
        if (err instanceof ConfigError) log.error({ field: err.field }, err.message);
        else log.error({ err }, "sidecar failed to start");
        void sidecar.close(0).then(() => resolve(err instanceof ConfigError ? EXIT_USAGE : EXIT_FAILURE));
      },
    );
  });
}

async function runDevAgentCommand(opts: DevAgentOptions, log: Logger): Promise<number> {
  const { startDevAgent } = await import("../dev-agent/index.js");
  const agent = await startDevAgent({ ...opts, log });
  log.info(
    { http: agent.httpUrl, https: agent.httpsUrl, datacenter: agent.datacenter, trustDomain: agent.trustDomain },
    `dev agent listening on ${agent.httpUrl}`,
  );
  if (opts.configSources !== undefined) logLoadedConfig(log, agent.loadedConfig(), "loaded service definitions");
  // Consul's agent reloads its config files on SIGHUP; a bad file is logged and the running services stay.
  const reload = (): void => {
    log.info("Reloading configuration...");
    agent.reloadConfig().then(
      (loaded) => logLoadedConfig(log, loaded, "reloaded service definitions"),
      (err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "Failed to reload configs"),
    );
  };
  process.on("SIGHUP", reload);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.off("SIGHUP", reload);
  log.info({ signal }, "stopping dev agent");
  await agent.stop();
  return EXIT_OK;
}

function logLoadedConfig(log: Logger, loaded: LoadedConfig, msg: string): void {
  const services = loaded.files.flatMap((f) =>
    f.services.map((s) => ({ file: f.path, id: s.id, port: s.port, ...(s.sidecar ? { sidecar: s.sidecar.id, sidecarPort: s.sidecar.port } : {}) })),
  );
  log.info({ files: loaded.files.map((f) => f.path), services }, `${msg}: ${services.map((s) => s.id).join(", ") || "none"}`);
}

function installCrashHandlers(log: Logger): void {
  // A half-alive proxy is worse than a dead one that the supervisor restarts.
  process.on("unhandledRejection", (reason) => {
    log.fatal({ err: reason }, "unhandled promise rejection; exiting");
    exitAfterFlush(log, EXIT_FAILURE);
  });
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "uncaught exception; exiting");
    exitAfterFlush(log, EXIT_FAILURE);
  });
}

function exitAfterFlush(log: Logger, code: number): void {
  try {
    log.flush(() => process.exit(code));
  } catch {
    process.exit(code);
  }
  setTimeout(() => process.exit(code), 1000).unref();
}
