#!/usr/bin/env node
// connect-sidecar: `proxy` (Consul's `consul connect proxy` flags), `dev-agent`, `demo` and `doctor`.
// Flags are parsed here, validated into options, and handed to the module that runs them.
// Every flag error names the flag and the fix, and exits 2 without a stack trace.
import { readFileSync } from "node:fs";
import type { Argv } from "yargs";
import yargsParser from "yargs-parser";
import { readTokenFile, resolveAgentConfig } from "./agent/index.js";
import { checkTlsGroups, ConfigError, findFreePort, parseGoDuration, parseHostPort } from "./net/index.js";
import { createLogger, createMetrics, startIdleMemoryRelease, type Logger } from "./ops/index.js";
import type { DevAgentOptions } from "./dev-agent/index.js";
import type { SidecarOptions, ProxySource } from "./sidecar/index.js";
import type { DemoOptions } from "./demo/index.js";
import type { DoctorOptions } from "./doctor/index.js";
import { parseUpstreamFlag } from "./upstream/index.js";
import { applyProxyRuntimeFlags } from "./ops/index.js";

/** Exit codes: 0 clean, 1 runtime failure (or connections cut at shutdown), 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export interface LogSettings { level: string; json: boolean | undefined }

/** A parsed and validated command line. */
export type Command =
  | { cmd: "proxy"; log: LogSettings; opts: SidecarOptions }
  | { cmd: "dev-agent"; log: LogSettings; opts: DevAgentOptions }
  | { cmd: "demo"; log: LogSettings; opts: DemoOptions }
  | { cmd: "doctor"; log: LogSettings; opts: DoctorOptions; json: boolean }
  | { cmd: "help"; text: string };

/** A usage error from the flag parser (unknown flag, missing value…): exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
  readonly code = "usage" as const;
}

// Consul's flags are single-dash long flags (`-sidecar-for web`): never split them into short groups.
const PARSER_CONFIG = { "short-option-groups": false, "camel-case-expansion": true, "strip-aliased": true } as const;

/** One flag: its type, default and -help line. The tables below are the single source of both. */
export interface FlagSpec {
  type: "string" | "boolean";
  default?: string | boolean;
  describe?: string;
}
export type FlagTable = Record<string, FlagSpec>;

const LOG_FLAGS = {
  "log-level": { type: "string", default: "info", describe: "trace, debug, info, warn or error" },
  "log-json": { type: "boolean", describe: "JSON log lines (default: JSON unless stdout is a terminal)" },
} satisfies FlagTable;

const PROXY_FLAGS = {
  ...LOG_FLAGS,
  "proxy-id": { type: "string", describe: "ID of the connect-proxy registration to run as (env CONNECT_PROXY_ID)" },
  "sidecar-for": { type: "string", describe: "ID of the service whose sidecar to run as (env CONNECT_SIDECAR_FOR)" },
  service: { type: "string", describe: "static mode: the service name (identity) to run as" },
  "service-addr": { type: "string", describe: "static mode: the local app address host:port" },
  listen: { type: "string", describe: "static mode: the public mTLS listener host:port" },
  upstream: { type: "string", describe: "static mode: <name>[.service|.query]:[host:]port (repeatable)" },
  register: { type: "boolean", default: false, describe: "static mode: register the proxy with the agent" },
  "register-id": { type: "string", default: "", describe: "suffix of the registration ID" },
  "sidecar-min-port": { type: "string", default: "21000", describe: "with -register and no -listen: lowest port to pick (0 with max 0: require -listen)" },
  "sidecar-max-port": { type: "string", default: "21255", describe: "with -register and no -listen: highest port to pick" },
  "http-addr": { type: "string", describe: "the agent's HTTP address (env CONSUL_HTTP_ADDR)" },
  token: { type: "string", describe: "ACL token (env CONSUL_HTTP_TOKEN)" },
  "token-file": { type: "string", describe: "file holding the ACL token (env CONSUL_HTTP_TOKEN_FILE); SIGHUP re-reads it" },
  "ca-file": { type: "string", describe: "CA file for HTTPS to the agent (env CONSUL_CACERT)" },
  "ca-path": { type: "string", describe: "directory of CA files (env CONSUL_CAPATH)" },
  "client-cert": { type: "string", describe: "client certificate for the agent (env CONSUL_CLIENT_CERT)" },
  "client-key": { type: "string", describe: "client key for the agent (env CONSUL_CLIENT_KEY)" },
  "tls-server-name": { type: "string", describe: "SNI for the agent (env CONSUL_TLS_SERVER_NAME)" },
  datacenter: { type: "string", describe: "datacenter of the agent's queries" },
  stale: { type: "boolean", describe: "accepted for compatibility; reads are agent-local" },
  "metrics-addr": { type: "string", describe: "admin server host:port for /metrics /ready /live /status (default 127.0.0.1:0)" },
  "drain-timeout": { type: "string", default: "30s", describe: "how long shutdown waits for live connections" },
  "allow-non-loopback-app": { type: "boolean", default: false, describe: "allow an app address off this host" },
  "log-connections": { type: "boolean", default: true, describe: "one log line per connection" },
  "revoke-live": { type: "boolean", default: true, describe: "close live connections when an intention now denies them" },
  "authz-max-stale": { type: "string", default: "10m", describe: "serve cached decisions this long while the agent is unreachable" },
  "max-conns": { type: "string", describe: "limit of concurrent inbound connections" },
  "checklist-interval": { type: "string", default: "10m", describe: "run the production checklist (doctor) on itself at ready and this often; 0 turns it off" },
  "idle-timeout": { type: "string", describe: "close connections idle this long (e.g. 1h); default none" },
  "idle-memory-release": { type: "boolean", default: true, describe: "when quiet after a busy spell, give the memory V8 pooled back to the OS (one full GC, 10-100 ms pause)" },
} satisfies FlagTable;

const DEV_AGENT_FLAGS = {
  ...LOG_FLAGS,
  "http-addr": { type: "string", default: "127.0.0.1:8500", describe: "host:port or unix:///path" },
  "https-addr": { type: "string", describe: "HTTPS host:port (needs -cert-file and -key-file)" },
  "cert-file": { type: "string" },
  "key-file": { type: "string" },
  "ca-file": { type: "string" },
  "verify-incoming": { type: "boolean", default: false },
  datacenter: { type: "string", default: "dc1" },
  "node-name": { type: "string" },
  "acls-enabled": { type: "boolean", default: false },
  "acl-default-policy": { type: "string", default: "allow", describe: "allow or deny" },
  "initial-management-token": { type: "string" },
  "leaf-cert-ttl": { type: "string", default: "72h" },
  "sidecar-min-port": { type: "string", default: "21000" },
  "sidecar-max-port": { type: "string", default: "21255" },
} satisfies FlagTable;

const DEMO_FLAGS = {
  ...LOG_FLAGS,
  "http-addr": { type: "string", describe: "the dev agent's address (default 127.0.0.1:8500 when free, else a free port)" },
} satisfies FlagTable;

const DOCTOR_FLAGS = {
  ...PROXY_FLAGS,
  json: { type: "boolean", default: false, describe: "print the report as JSON" },
  "audit-token-file": { type: "string", describe: "read-only operator token, used only to read /v1/agent/self and ACL policies" },
  "probe-timeout": { type: "string", default: "1s", describe: "timeout of each network probe" },
} satisfies FlagTable;

/** The commands, in -help order, each with its flags. */
export const COMMANDS: Readonly<Record<string, { describe: string; flags: FlagTable }>> = {
  proxy: { describe: "run one sidecar proxy (Consul's `connect proxy` flags)", flags: PROXY_FLAGS },
  "dev-agent": { describe: "run a Consul-compatible dev agent", flags: DEV_AGENT_FLAGS },
  demo: { describe: "start a dev agent, two apps and their sidecars, and show mTLS traffic", flags: DEMO_FLAGS },
  doctor: { describe: "check the production checklist live for one sidecar (PASS/WARN/FAIL, exit 0/1/2)", flags: DOCTOR_FLAGS },
};

const NO_COMMAND = "name a command: proxy, dev-agent or demo";

// A command line is parsed by yargs-parser (yargs' own parser, 1 module) the way yargs drives it, and
// checked as yargs' strict mode checks it; yargs itself (20 modules and cliui, ~4 MB of a sidecar's
// RSS) is loaded only to render -help. test/cli/flags.test.ts holds the two to the same results.

/** yargs-parser's options for `flags`, as yargs hands them over; -help/-h is known to every command. */
function parserOptions(flags: FlagTable): yargsParser.Options & { key: Record<string, boolean> } {
  const string: string[] = [];
  const boolean: string[] = ["help", "h"];
  const key: Record<string, boolean> = { help: true, h: true };
  const defaults: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(flags)) {
    (f.type === "string" ? string : boolean).push(name);
    key[name] = true;
    if (f.default !== undefined) defaults[name] = f.default;
  }
  return {
    string,
    boolean,
    key,
    default: defaults,
    alias: { help: ["h"] },
    configuration: { "parse-positional-numbers": false, ...PARSER_CONFIG, "populate--": true },
  };
}

/**
 * The flags of `argv` (command first, as yargs finds it), or a UsageError naming what yargs' strict
 * mode would: unknown flags, then stray arguments.
 */
export function parseFlags(argv: string[]): Args {
  const top = yargsParser.detailed(argv, parserOptions({}));
  if (top.error) throw top.error;
  const cmd = String(top.argv._[0] ?? "");
  const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (command === undefined) {
    // yargs' validation.nonOptionCount: what follows `--` counts as an argument here.
    if (top.argv._.length + ((top.argv["--"] as unknown[] | undefined)?.length ?? 0) === 0) throw new UsageError(NO_COMMAND);
    failOnUnknown(top, top.argv._.map(String).filter((p) => !Object.hasOwn(COMMANDS, p)));
    return withDoubleDash(top.argv);
  }
  const parsed = yargsParser.detailed(argv, parserOptions(command.flags));
  if (parsed.error) throw parsed.error;
  failOnUnknown(parsed, parsed.argv._.slice(1).map(String));
  return withDoubleDash(parsed.argv);
}

// yargs keeps what follows `--` apart while it checks, then hands it over as arguments.
function withDoubleDash(argv: yargsParser.Arguments): Args {
  const { "--": rest, ...args } = argv;
  return { ...args, _: [...argv._.map(String), ...((rest as unknown[] | undefined) ?? []).map(String)] };
}

// yargs' validation.unknownArguments: a key is known when the parser knows it as a flag or one of its
// aliases (camelCase forms included), not as an alias it made up for an unknown flag.
function failOnUnknown(parsed: yargsParser.DetailedArguments, strayArgs: string[]): void {
  const { aliases, newAliases } = parsed;
  const known = (key: string): boolean =>
    Object.hasOwn(aliases, key) && [key, ...aliases[key]!].some((a) => !Object.hasOwn(newAliases, a) || !newAliases[key]);
  const unknown = Object.keys(parsed.argv).filter((k) => k !== "_" && k !== "$0" && k !== "--" && !known(k));
  unknown.push(...strayArgs);
  if (unknown.length > 0) {
    // yargs lists them as "a, b" (a blank one quoted); each piece of that list gets its dash.
    const names = unknown.map((s) => (s.trim() ? s : `"${s}"`)).join(", ").split(", ");
    throw new UsageError(`unknown flag ${names.map((f) => `-${f}`).join(", ")}; check the spelling against -help`);
  }
}

// Command modules, yargs, undici, pino and prom-client are loaded when first used, so a `proxy`
// re-execs with its heap flags (ops/runtime-flags.ts) before any of them is, and never loads yargs,
// the dev agent, the demo or @peculiar/x509. -help is rendered by yargs from the same tables.
type Yargs = typeof import("yargs").default;

function helpParser(yargs: Yargs): Argv {
  return yargs([])
    .scriptName("connect-sidecar")
    .parserConfiguration(PARSER_CONFIG)
    .strict()
    .exitProcess(false)
    .help(false)
    .version(false);
}

/** The -help text: of one command, or of the CLI (commands and global flags) for anything else. */
async function helpText(cmd: string | undefined): Promise<string> {
  const { default: yargs } = await import("yargs");
  const command = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (command !== undefined) return await helpParser(yargs).usage(`connect-sidecar ${cmd} [flags]`).options(command.flags).getHelp();
  let y = helpParser(yargs).usage("connect-sidecar <command> [flags]\n\nFlags take one dash or two: -sidecar-for web, --sidecar-for=web.");
  for (const [name, c] of Object.entries(COMMANDS)) y = y.command(name, c.describe, (sub) => sub.options(c.flags));
  return await y.option("help", { alias: "h", type: "boolean", describe: "show help" }).getHelp();
}

type Args = Record<string, unknown> & { _: Array<string | number> };

/**
 * Parses and validates a command line. Throws UsageError or ConfigError (both exit 2), each
 * naming the flag at fault. `env` supplies CONNECT_* and CONSUL_* variables.
 */
export async function parseCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Command> {
  if (argv.length === 0) throw new UsageError(NO_COMMAND);
  if (argv[0] === "help" || argv[0] === "-h" || argv[0] === "--help" || argv[0] === "-help") {
    return { cmd: "help", text: await helpText(undefined) };
  }
  if (argv.some((a) => a === "-h" || a === "--help" || a === "-help")) return { cmd: "help", text: await helpText(argv[0]) };
  const args = parseFlags(argv);
  const cmd = String(args._[0]);
  if (args._.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(String(args._[1]))}; flags start with "-"`);
  const log = logSettings(args);
  switch (cmd) {
    case "proxy":
      return { cmd, log, opts: proxyCommandOptions(args, env) };
    case "dev-agent":
      return { cmd, log, opts: devAgentCommandOptions(args) };
    case "demo": {
      const httpAddr = optString(args, "httpAddr");
      if (httpAddr !== undefined) parseHostPort(httpAddr, "http-addr");
      return { cmd, log, opts: { httpAddr, logLevel: log.level } };
    }
    case "doctor": {
      // The same identity and agent flags, precedence and errors as `proxy`.
      const p = proxyCommandOptions(args, env);
      const auditFile = optString(args, "auditTokenFile");
      const opts: DoctorOptions = {
        source: p.source,
        agent: p.agent,
        probeTimeoutMs: positiveDuration(String(args.probeTimeout), "probe-timeout", false),
        ...(auditFile === undefined ? {} : { auditToken: readTokenFile(auditFile, "audit-token-file") }),
      };
      // The report goes to stdout; logs go to stderr so `-json` stays machine-readable.
      return { cmd, log: { ...log, level: args.logLevel === undefined ? "warn" : log.level }, opts, json: Boolean(args.json) };
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}; use proxy, dev-agent, demo or doctor`);
  }
}

function logSettings(args: Args): LogSettings {
  const level = String(args.logLevel ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError("log-level", `"${String(args.logLevel)}" is not a log level; use one of ${LOG_LEVELS.join(", ")}`);
  }
  const json = args.logJson === undefined ? undefined : Boolean(args.logJson);
  return { level, json };
}

/** Validates the `proxy` flags into SidecarOptions (spec §9.1). Throws ConfigError naming the flag. */
export function proxyCommandOptions(args: Args, env: NodeJS.ProcessEnv): SidecarOptions {
  checkTlsGroups();
  for (const [key, flag] of [["proxyId", "proxy-id"], ["sidecarFor", "sidecar-for"], ["service", "service"]] as const) {
    if (args[key] === "") throw new ConfigError(flag, `-${flag} needs a value, such as -${flag} web`);
  }
  const proxyId = optString(args, "proxyId") ?? nonEmpty(env.CONNECT_PROXY_ID);
  const sidecarFor = optString(args, "sidecarFor") ?? nonEmpty(env.CONNECT_SIDECAR_FOR);
  const service = optString(args, "service");
  let source: ProxySource;
  if (proxyId !== undefined) source = { t: "proxy-id", proxyId };
  else if (sidecarFor !== undefined) source = { t: "sidecar-for", serviceId: sidecarFor };
  else if (service !== undefined) source = staticSource(args, service);
  else {
    throw new ConfigError(
      "service",
      "-service or -proxy-id must be specified so that proxy can configure itself. " +
        "Use -sidecar-for <service-id> to run as a registered sidecar, or -service <name> for static mode.",
    );
  }
  const agent = resolveAgentConfig(
    {
      httpAddr: optString(args, "httpAddr"),
      token: optString(args, "token"),
      tokenFile: optString(args, "tokenFile"),
      caFile: optString(args, "caFile"),
      caPath: optString(args, "caPath"),
      clientCert: optString(args, "clientCert"),
      clientKey: optString(args, "clientKey"),
      tlsServerName: optString(args, "tlsServerName"),
      datacenter: optString(args, "datacenter"),
    },
    env,
  );
  const metricsText = optString(args, "metricsAddr");
  const maxConnsText = optString(args, "maxConns");
  const idleText = optString(args, "idleTimeout");
  const drainTimeoutMs = positiveDuration(String(args.drainTimeout), "drain-timeout", true);
  const authzMaxStaleMs = positiveDuration(String(args.authzMaxStale), "authz-max-stale", true);
  return {
    source,
    agent,
    metricsAddr: metricsText === undefined ? { host: "127.0.0.1", port: 0 } : parseHostPort(metricsText, "metrics-addr"),
    metricsAddrExplicit: metricsText !== undefined,
    drainTimeoutMs,
    allowNonLoopbackApp: Boolean(args.allowNonLoopbackApp),
    logConnections: Boolean(args.logConnections),
    revokeLive: Boolean(args.revokeLive),
    authzMaxStaleMs,
    maxConns: maxConnsText === undefined ? undefined : positiveInt(maxConnsText, "max-conns", 1, 1_000_000),
    idleTimeoutMs: idleText === undefined ? undefined : positiveDuration(idleText, "idle-timeout", false),
    checklistIntervalMs: positiveDuration(String(args.checklistInterval), "checklist-interval", true),
    idleMemoryRelease: Boolean(args.idleMemoryRelease),
  };
}

function staticSource(args: Args, service: string): ProxySource {
  const listenText = optString(args, "listen");
  const appText = optString(args, "serviceAddr");
  if (listenText !== undefined && appText === undefined) {
    throw new ConfigError("service-addr", "-service-addr must be specified with -listen so the proxy knows the backend service address");
  }
  const register = Boolean(args.register);
  const portRange = register && listenText === undefined ? sidecarPortRange(args) : undefined;
  if (portRange !== undefined && appText === undefined) {
    throw new ConfigError("service-addr", "-register needs -service-addr: the registration's proxy forwards to that app address");
  }
  const upstreamTexts = asStringArray(args.upstream);
  return {
    t: "static",
    service,
    listen: listenText === undefined ? undefined : parseHostPort(listenText, "listen"),
    app: appText === undefined ? undefined : parseHostPort(appText, "service-addr"),
    upstreams: upstreamTexts.map((u) => parseUpstreamFlag(u)),
    register: register ? { idSuffix: String(args.registerId ?? "") } : undefined,
    pickListenPort: portRange,
  };
}

/** -sidecar-min-port / -sidecar-max-port for self-registration without -listen; both 0 forces -listen. */
function sidecarPortRange(args: Args): { min: number; max: number } {
  const min = positiveInt(String(args.sidecarMinPort), "sidecar-min-port", 0, 65535);
  const max = positiveInt(String(args.sidecarMaxPort), "sidecar-max-port", 0, 65535);
  if (min === 0 && max === 0) {
    throw new ConfigError("listen", "-register with -sidecar-min-port 0 and -sidecar-max-port 0 requires an explicit -listen HOST:PORT");
  }
  if (min === 0 || max < min) {
    throw new ConfigError("sidecar-max-port", `the range ${min}–${max} is empty; use e.g. -sidecar-min-port 21000 -sidecar-max-port 21255`);
  }
  return { min, max };
}

/** Validates the `dev-agent` flags. Throws ConfigError naming the flag. */
export function devAgentCommandOptions(args: Args): DevAgentOptions {
  const policy = String(args.aclDefaultPolicy);
  if (policy !== "allow" && policy !== "deny") {
    throw new ConfigError("acl-default-policy", `"${policy}" is not a policy; use allow or deny`);
  }
  const httpAddr = String(args.httpAddr);
  if (!httpAddr.startsWith("unix://")) parseHostPort(httpAddr, "http-addr");
  const opts: DevAgentOptions = {
    httpAddr,
    datacenter: String(args.datacenter),
    aclsEnabled: Boolean(args.aclsEnabled),
    aclDefaultPolicy: policy,
    leafCertTtlMs: positiveDuration(String(args.leafCertTtl), "leaf-cert-ttl", false),
    sidecarMinPort: positiveInt(String(args.sidecarMinPort), "sidecar-min-port", 0, 65535),
    sidecarMaxPort: positiveInt(String(args.sidecarMaxPort), "sidecar-max-port", 0, 65535),
  };
  if (opts.sidecarMinPort! > opts.sidecarMaxPort!) {
    throw new ConfigError("sidecar-max-port", `${opts.sidecarMaxPort} is below -sidecar-min-port ${opts.sidecarMinPort}; raise it`);
  }
  const nodeName = optString(args, "nodeName");
  if (nodeName !== undefined) opts.nodeName = nodeName;
  const token = optString(args, "initialManagementToken");
  if (token !== undefined) opts.initialManagementToken = token;
  const httpsAddr = optString(args, "httpsAddr");
  if (httpsAddr !== undefined) {
    parseHostPort(httpsAddr, "https-addr");
    const certFile = optString(args, "certFile");
    const keyFile = optString(args, "keyFile");
    if (certFile === undefined) throw new ConfigError("cert-file", "-https-addr needs -cert-file (the server certificate PEM)");
    if (keyFile === undefined) throw new ConfigError("key-file", "-https-addr needs -key-file (the server key PEM)");
    const caFile = optString(args, "caFile");
    opts.https = { addr: httpsAddr, certFile, keyFile, verifyIncoming: Boolean(args.verifyIncoming) };
    if (caFile !== undefined) opts.https.caFile = caFile;
    if (opts.https.verifyIncoming && caFile === undefined) {
      throw new ConfigError("ca-file", "-verify-incoming needs -ca-file to verify client certificates against");
    }
  } else if (optString(args, "certFile") !== undefined || optString(args, "keyFile") !== undefined) {
    throw new ConfigError("https-addr", "-cert-file and -key-file are only used with -https-addr; add -https-addr 127.0.0.1:8501");
  }
  return opts;
}

function optString(args: Args, key: string): string | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  const last = Array.isArray(v) ? v[v.length - 1] : v; // a repeated single-valued flag: the last wins, as in Go
  return nonEmpty(String(last));
}

function asStringArray(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === "" ? undefined : s;
}

function positiveDuration(text: string, field: string, allowZero: boolean): number {
  const ms = parseGoDuration(text, field);
  if (ms < 0 || (!allowZero && ms === 0)) {
    throw new ConfigError(field, `"${text}" must be ${allowZero ? "zero or more" : "more than zero"}; use a duration such as 30s`);
  }
  return ms;
}

function positiveInt(text: string, field: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(field, `"${text}" is not a whole number from ${min} to ${max}; use a number such as ${Math.max(min, 1)}`);
  }
  return n;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Runs the CLI: parses, then runs the command until it ends. Resolves with the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let command: Command;
  try {
    command = await parseCommand(argv, env);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`connect-sidecar: ${err.message}\nRun "connect-sidecar ${argv[0] === "proxy" || argv[0] === "dev-agent" || argv[0] === "demo" ? `${argv[0]} ` : ""}-help" for the flags.\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (command.cmd === "help") {
    process.stdout.write(`${command.text}\n`);
    return EXIT_OK;
  }
  const log = createLogger(command.cmd === "doctor" ? { ...command.log, fd: 2 } : command.log);
  installCrashHandlers(log);
  log.info(
    { version: packageVersion(), node: process.versions.node, openssl: process.versions.openssl, command: command.cmd, pid: process.pid },
    `connect-sidecar ${command.cmd} starting (node ${process.versions.node}, openssl ${process.versions.openssl})`,
  );
  try {
    switch (command.cmd) {
      case "proxy":
        return await runProxyCommand(command.opts, log);
      case "dev-agent":
        return await runDevAgentCommand(command.opts, log);
      case "doctor": {
        const { runDoctor, formatReport, doctorExitCode } = await import("./doctor/index.js");
        const report = await runDoctor(command.opts, { log, now: Date.now });
        process.stdout.write(formatReport(report, { json: command.json }));
        return doctorExitCode(report);
      }
      case "demo": {
        const { runDemo } = await import("./demo/index.js");
        return await runDemo(command.opts, { log, cliPath: new URL(import.meta.url).pathname });
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
  const { runSidecar } = await import("./sidecar/index.js");
  const src = opts.source;
  if (src.t === "static" && src.listen === undefined && src.pickListenPort !== undefined) {
    const { min, max } = src.pickListenPort;
    // Checked against this host's sockets, not only the agent's registrations (spec §6.2 picks by the latter).
    src.listen = { host: "0.0.0.0", port: await findFreePort("0.0.0.0", min, max, "sidecar-min-port") };
    log.info({ listen: `0.0.0.0:${src.listen.port}`, range: `${min}-${max}` }, "picked a free public listener port from the sidecar range");
  }
  const metrics = createMetrics();
  const sidecar = await runSidecar(opts, { log, metrics, now: Date.now });
  const memoryRelease = opts.idleMemoryRelease === true ? startIdleMemoryRelease(log) : undefined;
  log.info({ metrics: `${sidecar.adminUrl()}/metrics`, ready: `${sidecar.adminUrl()}/ready` }, `admin server listening on ${sidecar.adminUrl()}`);
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, "second signal: exiting now");
        sidecar.destroy();
        return resolve(EXIT_FAILURE);
      }
      stopping = true;
      memoryRelease?.close();
      log.info({ signal, drainTimeoutMs: opts.drainTimeoutMs }, "shutting down: draining live connections");
      void sidecar.close(opts.drainTimeoutMs).then(resolve);
    };
    const reload = (): void => sidecar.reloadToken();
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    process.on("SIGHUP", reload);
    sidecar.ready.then(
      () => log.info({ admin: sidecar.adminUrl() }, "sidecar ready"),
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
  const { startDevAgent } = await import("./dev-agent/index.js");
  const agent = await startDevAgent({ ...opts, log });
  log.info(
    { http: agent.httpUrl, https: agent.httpsUrl, datacenter: agent.datacenter, trustDomain: agent.trustDomain },
    `dev agent listening on ${agent.httpUrl}`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  log.info({ signal }, "stopping dev agent");
  await agent.stop();
  return EXIT_OK;
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

if (import.meta.main) {
  // A proxy replaces itself (same PID, same stdio) with a process started with its heap flags;
  // returns here otherwise, or when the flags are already in force.
  applyProxyRuntimeFlags(process.argv.slice(2));
  const code = await main(process.argv.slice(2), process.env).catch((err: unknown) => {
    process.stderr.write(`connect-sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  });
  process.exitCode = code;
  // Pools, timers or a slow client may hold the loop open; the work is done.
  setTimeout(() => process.exit(code), 200).unref();
}
