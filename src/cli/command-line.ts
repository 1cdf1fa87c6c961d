// A command line, parsed and validated into the options of the command it names (spec §9.1 for
// `proxy`). Every flag error names the flag and the fix.
import { readTokenFile, resolveAgentConfig } from "../agent/index.js";
import type { DemoOptions } from "../demo/index.js";
import type { DevAgentOptions } from "../dev-agent/index.js";
import type { DoctorOptions } from "../doctor/index.js";
import { checkTlsGroups, ConfigError, parseGoDuration, parseHostPort } from "../net/index.js";
import type { ProxySource, SidecarOptions } from "../sidecar/index.js";
import { parseUpstreamFlag } from "../upstream/index.js";
import { helpText, NO_COMMAND, parseFlags, UsageError, type Args } from "./flags.js";
import { versionText } from "./version.js";

const VERSION_WORDS = new Set(["version", "-v", "-version", "--version"]);
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export interface LogSettings { level: string; json: boolean | undefined }

/** A parsed and validated command line. */
export type Command =
  | { cmd: "proxy"; log: LogSettings; opts: SidecarOptions }
  | { cmd: "dev-agent"; log: LogSettings; opts: DevAgentOptions }
  | { cmd: "demo"; log: LogSettings; opts: DemoOptions }
  | { cmd: "doctor"; log: LogSettings; opts: DoctorOptions; json: boolean }
  | { cmd: "help"; text: string }
  | { cmd: "version"; text: string };

/**
 * Parses and validates a command line. Throws UsageError or ConfigError (both exit 2), each
 * naming the flag at fault. `env` supplies CONNECT_* and CONSUL_* variables.
 */
export async function parseCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Command> {
  if (argv.length === 0) throw new UsageError(NO_COMMAND);
  // As Consul's CLI: `version`, or -v / -version / --version in the command's place.
  if (VERSION_WORDS.has(argv[0]!)) return { cmd: "version", text: versionText() };
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
  const drainTimeoutMs = positiveDuration(String(args.drainTimeout), "drain-timeout", true);
  const authzMaxStaleMs = positiveDuration(String(args.authzMaxStale), "authz-max-stale", true);
  return {
    source,
    agent,
    metricsAddr: metricsText === undefined ? { host: "127.0.0.1", port: 0 } : parseHostPort(metricsText, "metrics-addr"),
    metricsAddrExplicit: metricsText !== undefined,
    drainTimeoutMs,
    shutdownGracePeriodMs: positiveInt(String(args.shutdownGracePeriodSeconds), "shutdown-grace-period-seconds", 0, 86_400) * 1_000,
    startupGracePeriodMs: positiveInt(String(args.startupGracePeriodSeconds), "startup-grace-period-seconds", 0, 86_400) * 1_000,
    gracefulShutdownPath: adminPath(String(args.gracefulShutdownPath), "graceful-shutdown-path"),
    gracefulStartupPath: adminPath(String(args.gracefulStartupPath), "graceful-startup-path"),
    allowNonLoopbackApp: Boolean(args.allowNonLoopbackApp),
    logConnections: Boolean(args.logConnections),
    accessLog: Boolean(args.accessLog),
    revokeLive: Boolean(args.revokeLive),
    authzMaxStaleMs,
    maxConns: maxConnsText === undefined ? undefined : positiveInt(maxConnsText, "max-conns", 1, 1_000_000),
    idleTimeoutMs: positiveDuration(String(args.idleTimeout), "idle-timeout", true),
    tcpKeepAliveMs: keepAliveDuration(String(args.tcpKeepalive)),
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
  const configSources = [
    ...asStringArray(args.configFile).map((path) => ({ flag: "config-file" as const, path: nonEmptyPath(path, "config-file") })),
    ...asStringArray(args.configDir).map((path) => ({ flag: "config-dir" as const, path: nonEmptyPath(path, "config-dir") })),
  ];
  if (configSources.length > 0) opts.configSources = configSources;
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

function nonEmptyPath(path: string, flag: string): string {
  if (path === "") throw new ConfigError(flag, `-${flag} needs a path, such as -${flag} /etc/consul.d${flag === "config-file" ? "/web.hcl" : ""}`);
  return path;
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

const ADMIN_PATHS = new Set(["/metrics", "/live", "/ready", "/status"]);

/** An admin server path of our own: absolute, no query, not one the admin server already serves. */
function adminPath(text: string, field: string): string {
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(text) || ADMIN_PATHS.has(text)) {
    throw new ConfigError(field, `"${text}" must be an absolute path such as /graceful_shutdown, and not one of ${[...ADMIN_PATHS].join(", ")}`);
  }
  return text;
}

/** 0 (off) or whole seconds: the kernel counts TCP keepalive time in seconds. */
function keepAliveDuration(text: string): number {
  const ms = positiveDuration(text, "tcp-keepalive", true);
  if (ms !== 0 && (ms < 1_000 || ms % 1_000 !== 0)) {
    throw new ConfigError("tcp-keepalive", `"${text}" must be 0 (off) or whole seconds, as the kernel counts keepalive time; use a duration such as 30s`);
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
