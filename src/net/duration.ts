import { ConfigError } from "./config-error.js";

const UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};
const DURATION_RE = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * Parses a Go duration ("1h30m", "1500ms", "5s") to milliseconds, or returns undefined when the
 * text is not one. As in Go, "0" alone is valid and every other number needs a unit.
 */
export function tryParseGoDuration(text: string): number | undefined {
  if (text === "0") return 0;
  if (!DURATION_RE.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(PART_RE)) total += Number(m[1]) * (UNIT_MS[m[2]!] ?? NaN);
  if (!Number.isFinite(total)) return undefined;
  return text.startsWith("-") ? -total : total;
}

/** Parses a Go duration to milliseconds; throws ConfigError naming `field` when it is not one. */
export function parseGoDuration(text: string, field: string): number {
  const ms = tryParseGoDuration(text.trim());
  if (ms === undefined) {
    throw new ConfigError(field, `"${text}" is not a duration; use a number with a unit such as 500ms, 10s, 5m or 72h`);
  }
  return ms;
}

/** Formats milliseconds as a Go duration string ("30s", "1m30s", "0s"), as Consul renders them. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  return `${sign}${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${s}s`;
}
