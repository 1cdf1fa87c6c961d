#!/usr/bin/env node
// connect-sidecar: `proxy` (Consul's `consul connect proxy` flags), `dev-agent`, `demo` and `doctor`.
// This entry point loads nothing but the heap-flag check before it runs it: a `proxy` started without
// its node flags replaces itself (same PID, same stdio) with one started with them, and the CLI
// (src/cli/, with every module a proxy runs) is loaded only by the process that stays. Importing
// the CLI first cost the replaced process ~160 ms of CPU for nothing.
// The installed command is bin/connect-sidecar.cjs, which checks the Node version and calls runCli();
// `node dist/bundle/cli.js …` (the bundle `npm run build` makes: the demo's and the tests' children) and
// `node dist/src/cli.js …` (tsc's output) run it directly.
import { enablePrivateCompileCache, pruneCompileCache } from "./ops/compile-cache.js";
import { applyProxyRuntimeFlags } from "./ops/runtime-flags.js"; // not ops/index.js: it loads node:http

const PRUNE_AFTER_MS = 60_000;

/** Runs the CLI on `argv` (without node and the script) and sets the process's exit code. */
export async function runCli(argv: string[]): Promise<void> {
  // Returns when the flags are in force already, for another command, or where execve is missing.
  applyProxyRuntimeFlags(argv);
  const cacheDir = enablePrivateCompileCache(process.env); // before the CLI's modules load
  // A proxy runs for long: it prunes the cache a minute in, away from its start. Other commands are short.
  if (cacheDir !== undefined && argv[0] === "proxy") setTimeout(() => pruneCompileCache(cacheDir, Date.now()), PRUNE_AFTER_MS).unref();
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
