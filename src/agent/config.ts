// Where the agent is and how to talk to it: CLI flags and CONSUL_* environment variables,
// resolved with Consul's own rules (spec §1.1, `api/api.go`, `command/flags/http.go`).
import { readFileSync } from "node:fs";
import { ConfigError } from "../net/index.js";

/** The agent's HTTP endpoint; a unix socket is spoken to with Host `localhost`. */
export type AgentAddress =
  | { scheme: "http" | "https"; host: string; port: number; pathPrefix: string }
  | { scheme: "unix"; socketPath: string };

export interface AgentTlsConfig {
  caFile?: string;
  caPath?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  /** false when CONSUL_HTTP_SSL_VERIFY=false: the agent's certificate is not checked. */
  verify: boolean;
}

export interface AgentConfig {
  address: AgentAddress;
  tls: AgentTlsConfig;
  /** Resolved per spec §1.1: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN. */
  token: string;
  /** The file the token came from, remembered so SIGHUP can re-read it. */
  tokenFile?: string;
  datacenter?: string;
}

/** The HTTP flags of `consul connect proxy` (spec §9.1); each beats its environment variable. */
export interface AgentFlags {
  httpAddr?: string;
  token?: string;
  tokenFile?: string;
  caFile?: string;
  caPath?: string;
  clientCert?: string;
  clientKey?: string;
  tlsServerName?: string;
  datacenter?: string;
}

const DEFAULT_HTTP_ADDR = "127.0.0.1:8500";

/**
 * Resolves flags and environment into an AgentConfig. Reads the token file (once, trimmed).
 * Throws ConfigError naming the flag or variable at fault.
 */
export function resolveAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv): AgentConfig {
  const pick = (flag: string | undefined, flagName: string, envName: string) =>
    nonEmpty(flag) !== undefined
      ? { value: flag as string, field: flagName }
      : nonEmpty(env[envName]) !== undefined
        ? { value: env[envName] as string, field: envName }
        : undefined;

  const ssl = parseBoolEnv(env, "CONSUL_HTTP_SSL");
  const verify = parseBoolEnv(env, "CONSUL_HTTP_SSL_VERIFY");
  const addr = pick(flags.httpAddr, "http-addr", "CONSUL_HTTP_ADDR") ?? { value: DEFAULT_HTTP_ADDR, field: "http-addr" };
  const address = parseAgentAddress(addr.value, addr.field, ssl === true ? "https" : "http");

  const certFile = pick(flags.clientCert, "client-cert", "CONSUL_CLIENT_CERT");
  const keyFile = pick(flags.clientKey, "client-key", "CONSUL_CLIENT_KEY");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const missing = certFile === undefined ? "client-cert / CONSUL_CLIENT_CERT" : "client-key / CONSUL_CLIENT_KEY";
    throw new ConfigError((certFile ?? keyFile)!.field, `a client certificate needs both a cert and a key; set ${missing} too`);
  }
  const serverName = pick(flags.tlsServerName, "tls-server-name", "CONSUL_TLS_SERVER_NAME");
  const tls: AgentTlsConfig = { verify: verify !== false };
  const caFile = pick(flags.caFile, "ca-file", "CONSUL_CACERT");
  const caPath = pick(flags.caPath, "ca-path", "CONSUL_CAPATH");
  if (caFile) tls.caFile = caFile.value;
  if (caPath) tls.caPath = caPath.value;
  if (certFile && keyFile) {
    tls.certFile = certFile.value;
    tls.keyFile = keyFile.value;
  }
  if (serverName) tls.serverName = stripPort(serverName.value);

  const cfg: AgentConfig = { address, tls, token: "" };
  const token = resolveToken(flags, env);
  cfg.token = token.token;
  if (token.tokenFile !== undefined) cfg.tokenFile = token.tokenFile;
  const dc = nonEmpty(flags.datacenter);
  if (dc !== undefined) cfg.datacenter = dc;
  return cfg;
}

/** Reads a token file the way Consul does: whole file, whitespace-trimmed. Throws ConfigError. */
export function readTokenFile(path: string, field = "token-file"): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new ConfigError(field, `cannot read token file ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

function resolveToken(flags: AgentFlags, env: NodeJS.ProcessEnv): { token: string; tokenFile?: string } {
  // spec §1.1: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN
  const flagFile = nonEmpty(flags.tokenFile);
  if (flagFile !== undefined) return { token: readTokenFile(flagFile, "token-file"), tokenFile: flagFile };
  const flagToken = nonEmpty(flags.token);
  if (flagToken !== undefined) return { token: flagToken };
  const envFile = nonEmpty(env.CONSUL_HTTP_TOKEN_FILE);
  if (envFile !== undefined) return { token: readTokenFile(envFile, "CONSUL_HTTP_TOKEN_FILE"), tokenFile: envFile };
  return { token: nonEmpty(env.CONSUL_HTTP_TOKEN) ?? "" };
}

/**
 * Parses `host:port[/prefix]`, `http(s)://host:port[/prefix]` or `unix:///path`. `defaultScheme`
 * is https when CONSUL_HTTP_SSL=true; an explicit `http://` never downgrades it (as in api.go).
 * Throws ConfigError; any other scheme is "Unknown protocol scheme".
 */
export function parseAgentAddress(text: string, field: string, defaultScheme: "http" | "https" = "http"): AgentAddress {
  let scheme: "http" | "https" = defaultScheme;
  let rest = text.trim();
  const sep = rest.indexOf("://");
  if (sep >= 0) {
    const given = rest.slice(0, sep);
    rest = rest.slice(sep + 3);
    switch (given) {
      case "http":
        break; // "Never revert to http if TLS was explicitly requested."
      case "https":
        scheme = "https";
        break;
      case "unix":
        if (rest === "") throw new ConfigError(field, "unix:// address needs a socket path, e.g. unix:///run/consul.sock");
        return { scheme: "unix", socketPath: rest };
      default:
        throw new ConfigError(field, `Unknown protocol scheme: ${given}`);
    }
  }
  const slash = rest.indexOf("/");
  const hostPort = slash >= 0 ? rest.slice(0, slash) : rest;
  const pathPrefix = slash >= 0 ? normalizePrefix(rest.slice(slash)) : "";
  const { host, port } = splitHostPort(hostPort, field, scheme === "https" ? 443 : 80);
  return { scheme, host, port, pathPrefix };
}

function splitHostPort(text: string, field: string, defaultPort: number): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new ConfigError(field, `bad address "${text}": unclosed "["`);
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) throw new ConfigError(field, `bad address "${text}"`);
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon >= 0 && text.indexOf(":") !== colon) {
      throw new ConfigError(field, `bad address "${text}": write IPv6 addresses as [addr]:port`);
    }
    host = colon >= 0 ? text.slice(0, colon) : text;
    portText = colon >= 0 ? text.slice(colon + 1) : undefined;
  }
  if (host === "") throw new ConfigError(field, `bad address "${text}": empty host`);
  if (portText === undefined) return { host, port: defaultPort };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new ConfigError(field, `bad port "${portText}" in "${text}"`);
  return { host, port };
}

function normalizePrefix(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "" : trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

function stripPort(serverName: string): string {
  // spec §1.1: any ":port" is stripped from CONSUL_TLS_SERVER_NAME.
  if (serverName.startsWith("[")) {
    const close = serverName.indexOf("]");
    return close > 0 ? serverName.slice(1, close) : serverName;
  }
  const colon = serverName.indexOf(":");
  return colon >= 0 && serverName.lastIndexOf(":") === colon ? serverName.slice(0, colon) : serverName;
}

/** Go's strconv.ParseBool; undefined when unset. Throws ConfigError on other text. */
function parseBoolEnv(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(raw)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(raw)) return false;
  throw new ConfigError(name, `"${raw}" is not a boolean (use true or false)`);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}
