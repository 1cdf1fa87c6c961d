// Heap sizing for a `proxy` process. V8 sizes the young generation from the machine's memory: on a
// 24 GB host a sidecar's new space grew to 64 MiB of semi-spaces (RSS 110 → 285 MB in a 2-minute
// soak) while its live heap stayed under 20 MB. A proxy's garbage is small and short-lived (payload
// buffers are off-heap), so a 2 MiB semi-space costs little throughput and keeps RSS flat.
//
// Heap limits are fixed when the isolate is created: v8.setFlagsFromString() in a running process
// does not shrink a heap that exists. So the process replaces itself (execve: same PID, same stdio,
// same signals for a supervisor) with `node <flags> <execArgv> <script> <args>` before it has loaded
// anything heavy. That works however the CLI was started: `npx connect-sidecar`, `node dist/src/cli.js`,
// the demo's and tests' child processes. Flags the user gave (execArgv or NODE_OPTIONS) win.
// Setting the flags at runtime instead was measured (Node 24.21) and does not do the same: only the
// young generation could be bounded that way (--semi-space-growth-factor=1); --single-threaded-gc
// set at runtime leaves V8's four GC helper threads at work (50–70 ms of CPU each under a 3 s
// allocation churn, against 1–7 ms with the flag at launch), --v8-pool-size cannot be set after
// start, and turning off the GC flags it implies one by one (--no-concurrent-marking,
// --no-parallel-marking) aborts V8. The re-exec costs one Node boot (~30–40 ms of CPU; the 2 MiB
// semi-space adds ~3 ms of scavenges to start-up). bench/README.md, "where the time and memory go".
import { statSync, type Stats } from "node:fs";

/** Node flags a `proxy` process runs with (each skipped when the user set that flag). */
// Not --expose-gc: given at launch it makes V8 refuse Node's code cache for its builtins (~60 ms
// more CPU to start); the idle memory release takes its gc() at run time (net/node-internals.ts).
// --single-threaded-gc and --v8-pool-size=1: a proxy's heap is small (~15 MB) and its scavenges
// short (0.2–0.4 ms, ~0.4 µs per proxied request since reads go to a scratch buffer), so helper
// threads buy nothing; on a sidecar held to one core (a CPU limit, or pinned) a parallel scavenge
// waits for helpers that cannot run (a 4.9 ms scavenge seen, 0.9 ms at most without them), and each
// thread keeps a malloc arena: idle RSS after load 83 → 75 MB (bench/README.md, "where the time and memory go").
export const PROXY_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--single-threaded-gc", "--v8-pool-size=1"];

/** Setting CONNECT_SIDECAR_NODE_FLAGS=off keeps Node's own heap sizing (no re-exec). */
export const RUNTIME_FLAGS_ENV = "CONNECT_SIDECAR_NODE_FLAGS";

// jemalloc, where the host has it, preloaded by the same re-exec. glibc's malloc keeps what a busy
// spell freed: a sidecar that held 1,000 connections and then carried keep-alive load kept a 92 MB
// main arena of which 5.2 MB were in use (mallinfo2), spread so that only malloc_trim() could give
// the rest back, and Node cannot call it; RSS 25 s after the load 115–120 MB (trimmed from gdb: 74).
// jemalloc returns freed pages on its own after a few seconds (dirty_decay_ms): 74–78 MB at the same
// point, CPU per request and new connections per second unchanged (bench/README.md, "where the time
// and memory go"). Envoy links tcmalloc for the same reason. Only glibc distributions' paths (the
// Debian/Ubuntu multiarch one of this process's architecture, then /usr/lib64 of RHEL and Fedora),
// and only a file no user but root can write: a preloaded library runs inside the proxy.
const MULTIARCH: Partial<Record<NodeJS.Architecture, string>> = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" };
export const JEMALLOC_PATHS: readonly string[] = [
  ...(MULTIARCH[process.arch] === undefined ? [] : [`/usr/lib/${MULTIARCH[process.arch]}/libjemalloc.so.2`]),
  "/usr/lib64/libjemalloc.so.2",
];

/** Setting CONNECT_SIDECAR_JEMALLOC=off keeps glibc's malloc. */
export const JEMALLOC_ENV = "CONNECT_SIDECAR_JEMALLOC";

type StatLike = Pick<Stats, "uid" | "mode"> & { isFile(): boolean };

/**
 * The jemalloc library to preload into a proxy, or undefined: LD_PRELOAD is the user's (set, even
 * empty), the preload is turned off, or no candidate is a regular file only root can write.
 */
export function jemallocToPreload(env: NodeJS.ProcessEnv, candidates: readonly string[] = JEMALLOC_PATHS, stat: (path: string) => StatLike = statSync): string | undefined {
  if (env.LD_PRELOAD !== undefined || env[JEMALLOC_ENV] === "off") return undefined;
  return candidates.find((path) => {
    try {
      const st = stat(path);
      return st.isFile() && st.uid === 0 && (st.mode & 0o022) === 0;
    } catch {
      return false;
    }
  });
}

/**
 * The node flags still missing for `argv` (the CLI's arguments, without node and script): the
 * PROXY_NODE_FLAGS whose name is in neither `execArgv` nor NODE_OPTIONS. Empty for another command,
 * or when turned off.
 */
export function missingRuntimeFlags(argv: readonly string[], execArgv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  if (argv[0] !== "proxy" || env[RUNTIME_FLAGS_ENV] === "off") return [];
  if (argv.some((a) => a === "-h" || a === "--help" || a === "-help")) return [];
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? "").split(/\s+/)].map(flagName);
  return PROXY_NODE_FLAGS.filter((f) => !given.includes(flagName(f)));
}

/**
 * Re-executes this process with the missing PROXY_NODE_FLAGS (see the file comment), and jemalloc
 * preloaded where jemallocToPreload() finds it. Returns when
 * nothing is missing, or when the platform has no execve (Windows; the process then runs with
 * Node's defaults). On success it does not return.
 */
export function applyProxyRuntimeFlags(argv: readonly string[]): void {
  const missing = missingRuntimeFlags(argv, process.execArgv, process.env);
  if (missing.length === 0 || typeof process.execve !== "function" || process.platform === "win32") return;
  const script = process.argv[1];
  if (script === undefined) return;
  const preload = jemallocToPreload(process.env);
  const env = preload === undefined ? process.env : { ...process.env, LD_PRELOAD: preload };
  try {
    process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, script, ...argv], env);
  } catch {
    // execve failed (EACCES on a noexec mount, …): the current process carries on unchanged.
  }
}

function flagName(flag: string): string {
  const eq = flag.indexOf("=");
  return (eq < 0 ? flag : flag.slice(0, eq)).replaceAll("_", "-");
}
