// The CLI's flags: one table per command, parsed by yargs-parser as yargs parses them, and the -help
// text, which yargs renders from the same tables.
import type { Argv } from "yargs";
import yargsParser from "yargs-parser";
import { DEFAULT_GRACEFUL_SHUTDOWN_PATH, DEFAULT_GRACEFUL_STARTUP_PATH } from "../sidecar/options.js"; // not sidecar/index.js: it loads the sidecar

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
  register: { type: "boolean", default: false, describe: "static mode: register the proxy with the agent as <service>-sidecar-proxy (a service identity may write it)" },
  "register-id": { type: "string", default: "", describe: "suffix of the registration ID: <service>-sidecar-proxy-<suffix>" },
  "sidecar-min-port": { type: "string", default: "21000", describe: "with -register and no -listen: lowest port to pick, one no registered service has and this host has free (0 with max 0: require -listen)" },
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
  "drain-timeout": { type: "string", default: "30s", describe: "how long shutdown waits for live connections; then it cuts them and exits 1" },
  "shutdown-grace-period-seconds": { type: "string", default: "5", describe: "after SIGTERM (or the graceful shutdown path) the upstream listeners keep accepting this long, within -drain-timeout, so the app can finish its own shutdown (consul-dataplane's flag); 0: none" },
  "startup-grace-period-seconds": { type: "string", default: "0", describe: "the graceful startup path answers 200 after this long even when not ready (consul-dataplane's flag); 0: it waits for ready" },
  "graceful-shutdown-path": { type: "string", default: DEFAULT_GRACEFUL_SHUTDOWN_PATH, describe: "admin server path that starts a graceful shutdown (GET, PUT or POST; for a preStop hook)" },
  "graceful-startup-path": { type: "string", default: DEFAULT_GRACEFUL_STARTUP_PATH, describe: "admin server path that answers once the sidecar is ready (for a postStart hook)" },
  "allow-non-loopback-app": { type: "boolean", default: false, describe: "allow an app address off this host" },
  "log-connections": { type: "boolean", default: true, describe: "one log line per connection" },
  "access-log": { type: "boolean", default: true, describe: "one log line per HTTP request (listeners whose protocol is http)" },
  "revoke-live": { type: "boolean", default: true, describe: "close live connections when an intention now denies them" },
  "authz-max-stale": { type: "string", default: "10m", describe: "serve cached decisions this long while the agent is unreachable" },
  "max-conns": { type: "string", describe: "limit of concurrent connections, for the public listener and for each upstream listener (each its own count)" },
  "checklist-interval": { type: "string", default: "10m", describe: "run the production checklist (doctor) on itself at ready and this often; 0 turns it off" },
  "idle-timeout": { type: "string", default: "1h", describe: "close proxied connections (both directions) idle this long; 0 turns it off" },
  "tcp-keepalive": { type: "string", default: "30s", describe: "TCP keepalive on every proxied socket: first probe after this much silence, so a vanished peer is closed; 0 turns it off" },
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
  "config-file": { type: "string", describe: "a service definition file (.hcl or .json) to load, as Consul's agent does (repeatable; SIGHUP reloads)" },
  "config-dir": { type: "string", describe: "a directory whose .hcl and .json service definitions to load (repeatable; SIGHUP reloads)" },
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

/** What a command line without a command is told. */
export const NO_COMMAND = "name a command: proxy, dev-agent, demo or doctor (or --version)";

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

// yargs is loaded only here, for -help, from the same tables.
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
export async function helpText(cmd: string | undefined): Promise<string> {
  const { default: yargs } = await import("yargs");
  const command = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (command !== undefined) return await helpParser(yargs).usage(`connect-sidecar ${cmd} [flags]`).options(command.flags).getHelp();
  let y = helpParser(yargs).usage("connect-sidecar <command> [flags]\n\nFlags take one dash or two: -sidecar-for web, --sidecar-for=web.\nconnect-sidecar --version prints the version.");
  for (const [name, c] of Object.entries(COMMANDS)) y = y.command(name, c.describe, (sub) => sub.options(c.flags));
  return await y.option("help", { alias: "h", type: "boolean", describe: "show help" }).getHelp();
}

/** Parsed flags: each under its name and its camelCase name; `_` holds the command and any other arguments. */
export type Args = Record<string, unknown> & { _: Array<string | number> };
