#!/usr/bin/env node
// connect-sidecar: `proxy` (Consul's `consul connect proxy` flags), `dev-agent`, `demo` and `doctor`.
// This entry point loads nothing but the heap-flag check before it runs it: a `proxy` started without
// its node flags replaces itself (same PID, same stdio) with one started with them, and the CLI
// (src/cli/, with every module a proxy runs) is loaded only by the process that stays. Importing
// the CLI first cost the replaced process ~160 ms of CPU for nothing.
// The installed command is bin/connect-sidecar.cjs, which checks the Node version and calls runCli();
// `node dist/src/cli.js …` (the demo's and the tests' children) runs it directly.
import { enableCompileCache } from "node:module";
import { join } from "node:path";
import { applyProxyRuntimeFlags } from "./ops/runtime-flags.js"; // not ops/index.js: it loads node:http

/**
 * Node's compile cache (V8 code cache of every module) in the cache directory systemd made for this
 * unit (CacheDirectory=, $CACHE_DIRECTORY: created for the unit's user, mode 0700), so a restart
 * compiles nothing it compiled before. Only there: a cache directory another user can write could
 * hand us compiled code, so anywhere else it stays opt-in (NODE_COMPILE_CACHE). Returns the directory.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  const unitCache = env.CACHE_DIRECTORY?.split(":")[0];
  if (env.NODE_COMPILE_CACHE !== undefined || unitCache === undefined || unitCache === "") return undefined;
  return join(unitCache, "compile-cache");
}

/** Runs the CLI on `argv` (without node and the script) and sets the process's exit code. */
export async function runCli(argv: string[]): Promise<void> {
  // Returns when the flags are in force already, for another command, or where execve is missing.
  applyProxyRuntimeFlags(argv);
  const cacheDir = compileCacheDir(process.env);
  if (cacheDir !== undefined) enableCompileCache(cacheDir); // before the CLI's modules load; a failure only costs the cache
  const { main, EXIT_FAILURE } = await import("./cli/index.js");
  const code = await main(argv, process.env).catch((err: unknown) => {
    process.stderr.write(`connect-sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  });
  process.exitCode = code;
  // Pools, timers or a slow client may hold the loop open; the work is done.
  setTimeout(() => process.exit(code), 200).unref();
}

if (import.meta.main) await runCli(process.argv.slice(2));
