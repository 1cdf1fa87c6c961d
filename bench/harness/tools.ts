// haproxy and wrk: found on PATH, or installed from Debian's packages when the harness runs as root
// with apt-get (`apt-get install -y haproxy wrk`, `apt-get update` first if that fails). A tool that
// is still missing leaves its column to the fallback (or skipped) with a message saying why.
import { spawnSync } from "node:child_process";

export interface Tool { path: string; version: string }
export interface Tools { haproxy: Tool | undefined; wrk: Tool | undefined; notes: string[] }

function which(name: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const p = r.stdout.trim();
  return r.status === 0 && p !== "" ? p : undefined;
}

function versionOf(path: string, args: string[]): string {
  const r = spawnSync(path, args, { encoding: "utf8", timeout: 5000 });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return text.split("\n").find((l) => l.trim() !== "")?.trim() ?? "unknown";
}

function aptInstall(pkgs: string[], budgetMs: number, notes: string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const deadline = Date.now() + budgetMs;
  const left = (): number => Math.max(1, deadline - Date.now());
  const install = (): boolean =>
    spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...pkgs], { env, timeout: left(), stdio: "ignore" }).status === 0;
  if (install()) return void notes.push(`installed ${pkgs.join(", ")} with apt-get`);
  if (Date.now() >= deadline) return void notes.push(`apt-get install ${pkgs.join(" ")} did not finish within ${budgetMs / 1000} s`);
  const update = spawnSync("apt-get", ["update"], { env, timeout: left(), stdio: "ignore" });
  if (update.status !== 0) return void notes.push(`apt-get update failed (${update.error?.message ?? `exit ${update.status}`})`);
  if (install()) return void notes.push(`installed ${pkgs.join(", ")} with apt-get (after apt-get update)`);
  notes.push(`apt-get install ${pkgs.join(" ")} failed${Date.now() >= deadline ? ` (out of its ${budgetMs / 1000} s budget)` : ""}`);
}

/** Finds haproxy and wrk, installing the missing ones when allowed and possible. Never throws. */
/** `installBudgetMs` bounds the whole apt-get sequence (install, update, install). */
export function ensureTools(opts: { install: boolean; installBudgetMs: number }): Tools {
  const notes: string[] = [];
  const missing = ["haproxy", "wrk"].filter((t) => which(t) === undefined);
  if (missing.length > 0) {
    const root = typeof process.getuid === "function" && process.getuid() === 0;
    if (!opts.install) notes.push(`${missing.join(", ")} missing; installation disabled (--no-install)`);
    else if (!root) notes.push(`${missing.join(", ")} missing and the harness is not root: cannot apt-get install`);
    else if (which("apt-get") === undefined) notes.push(`${missing.join(", ")} missing and apt-get is not available`);
    else aptInstall(missing, opts.installBudgetMs, notes);
  }
  const haproxyPath = which("haproxy");
  const wrkPath = which("wrk");
  let haproxy: Tool | undefined;
  if (haproxyPath) haproxy = { path: haproxyPath, version: versionOf(haproxyPath, ["-v"]) };
  else notes.push("haproxy not available: the haproxy column is skipped");
  let wrk: Tool | undefined;
  if (wrkPath) wrk = { path: wrkPath, version: versionOf(wrkPath, ["-v"]) };
  else notes.push("wrk not available: throughput and connection rates use the Node generators");
  return { haproxy, wrk, notes };
}
