// A fixture that fails a test which leaves a socket open. Every TCP or unix socket (client, accepted, or
// server) opened while the test runs is tracked through async_hooks (TCPWRAP, PIPEWRAP and their server
// kinds: a TLS socket's TCP handle included); when the test and all its t.after clean-ups have run, each one
// must be closed. Use `test` from this module in place of node:test's (or wrap one body in leakChecked):
//   import { test } from "../support/leaks.js";
// A clean-up that closes asynchronously is waited for (bounded by settleMs); then the test fails with
// every handle still open and the stack that opened it.
import { createHook } from "node:async_hooks";
import { test as nodeTest, type TestContext, type TestOptions } from "node:test";
import { until } from "./wait.js";

const SOCKET_TYPES = new Set(["TCPWRAP", "TCPSERVERWRAP", "PIPEWRAP", "PIPESERVERWRAP"]);
const DEFAULT_SETTLE_MS = 5_000;

export interface OpenHandle {
  type: string;
  /** The test's own frames of the stack that opened it. */
  openedAt: string;
}

export interface SocketTracker {
  /** Sockets opened since tracking began that are not closed yet. */
  open(): OpenHandle[];
  /** Waits up to `settleMs` for every tracked socket to close, stops tracking, and fails naming the ones still open. */
  assertAllClosed(opts?: { settleMs?: number }): Promise<void>;
}

/** Starts tracking the sockets opened from now on. */
export function trackSockets(): SocketTracker {
  const open = new Map<number, OpenHandle>();
  const hook = createHook({
    init(id, type) {
      if (!SOCKET_TYPES.has(type)) return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      const stack = new Error().stack ?? "";
      Error.stackTraceLimit = limit;
      open.set(id, { type, openedAt: ownFrames(stack) });
    },
    destroy(id) {
      open.delete(id);
    },
  }).enable();
  return {
    open: () => [...open.values()],
    async assertAllClosed(opts = {}) {
      const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
      try {
        await until(() => open.size === 0, "every socket the test opened to close", { timeoutMs: settleMs }).catch(() => undefined);
      } finally {
        hook.disable();
      }
      if (open.size === 0) return;
      const list = [...open.values()].map((h) => `  ${h.type} opened at\n${h.openedAt}`).join("\n");
      throw new Error(`${open.size} socket(s) opened by this test are still open after its clean-up:\n${list}`);
    },
  };
}

type TestFn = (t: TestContext) => unknown;

/**
 * Wraps a test body: tracks its sockets, runs the t.after hooks it (and the harnesses it calls) register, in
 * node:test's order, then fails the test if any socket it opened is still open.
 */
export function leakChecked(fn: TestFn, opts: { settleMs?: number } = {}): (t: TestContext) => Promise<void> {
  return async (t) => {
    const tracker = trackSockets();
    const hooks: Array<(t: TestContext) => unknown> = [];
    const ctx = new Proxy(t, {
      get(target, prop) {
        if (prop === "after") return (hook: (t: TestContext) => unknown) => void hooks.push(hook);
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    let failure: unknown;
    try {
      await fn(ctx);
    } catch (err) {
      failure = err;
    }
    for (const hook of hooks) {
      try {
        await hook(ctx);
      } catch (err) {
        failure ??= err;
      }
    }
    try {
      await tracker.assertAllClosed(opts);
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined) throw failure;
  };
}

/** node:test's `test(name, [options], fn)`, each body run under leakChecked. */
export function test(name: string, fn: TestFn): Promise<void>;
export function test(name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function test(name: string, a: TestOptions | TestFn, b?: TestFn): Promise<void> {
  return typeof a === "function" ? nodeTest(name, leakChecked(a)) : nodeTest(name, a, leakChecked(b!));
}

/** The frames of a stack outside node's internals and this module. */
function ownFrames(stack: string): string {
  const own = stack
    .split("\n")
    .slice(1)
    .filter((l) => !l.includes("(node:") && !l.includes("at node:") && !l.includes("/support/leaks.js") && !l.includes("node_modules"))
    .slice(0, 6);
  return own.length > 0 ? own.join("\n") : "    (no frame of the test's own: a connection accepted by a server, or opened from a callback)";
}
