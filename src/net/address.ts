import { isIPv4, isIPv6 } from "node:net";
import { ConfigError } from "./config-error.js";

// A DNS name: labels of letters, digits, '-' and '_' separated by dots (an optional final dot).
const HOSTNAME_RE = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const PORT_RE = /^\d{1,5}$/;
// An IPv4-mapped 127.0.0.0/8 address as the WHATWG URL parser serialises it: ::ffff:7fXX:XXXX.
const MAPPED_LOOPBACK_RE = /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/;

/**
 * Parses `host:port` or `[ipv6]:port` (port 0–65535) into its parts; the host comes back without
 * brackets. Throws ConfigError naming `field` and showing the right form when the text is not one.
 */
export function parseHostPort(text: string, field: string): { host: string; port: number } {
  const bad = (why: string): ConfigError =>
    new ConfigError(field, `"${text}" ${why}; use host:port such as 127.0.0.1:8080, localhost:8080 or [::1]:8080`);
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw bad("has no closing ']'");
    host = text.slice(1, close);
    if (text[close + 1] !== ":") throw bad("has no :port after the bracketed address");
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw bad("does not hold an IPv6 address between the brackets");
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw bad("has no port");
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) throw bad("looks like an IPv6 address without brackets");
    if (host === "") throw bad("has no host");
    if (!isIPv4(host) && !HOSTNAME_RE.test(host)) throw bad("has an invalid host");
  }
  if (!PORT_RE.test(portText)) throw bad("has no numeric port");
  const port = Number(portText);
  if (port > 65535) throw bad("has a port above 65535");
  return { host, port };
}

/**
 * True when `host` names this machine's loopback: "localhost" (any case), 127.0.0.0/8, ::1 (any
 * spelling, with or without brackets) or an IPv4-mapped 127.x address. Never throws.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.endsWith(".") ? host.slice(0, -1) : host;
  if (h.toLowerCase() === "localhost") return true;
  if (isIPv4(h)) return h.startsWith("127.");
  const bare = unbracketHost(h);
  if (!isIPv6(bare)) return false;
  let canonical: string;
  try {
    canonical = new URL(`http://[${bare}]/`).hostname; // WHATWG canonical form: lowercase, "::" compressed
  } catch {
    return false;
  }
  return canonical === "[::1]" || MAPPED_LOOPBACK_RE.test(canonical);
}

/** `host` without the brackets an IPv6 literal may come in ("[::1]" → "::1"); any other host as it is. */
export function unbracketHost(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** A host as it goes before ":port" in logs, URLs and /status: IPv6 in brackets. */
export function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** "host:port", with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return `${formatHost(host)}:${port}`;
}

/** A TCP address or a unix socket as logs and /status write it: "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock". */
export function formatAddress(a: { host: string; port: number } | { socketPath: string }): string {
  return "socketPath" in a ? `unix:${a.socketPath}` : formatHostPort(a.host, a.port);
}
