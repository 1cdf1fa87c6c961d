// The one abortable wait of the code base: every "sleep unless stopped" and "wait for this, but not
// longer than that" goes through race(), so no caller leaks a timer or an abort listener.

type Outcome = "settled" | "timeout" | "aborted";

function race(p: Promise<unknown> | undefined, ms: number, signal: AbortSignal | undefined): Promise<Outcome> {
  if (signal?.aborted) return Promise.resolve("aborted");
  return new Promise<Outcome>((resolve) => {
    const done = (o: Outcome): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(o);
    };
    const onAbort = (): void => done("aborted");
    const timer = setTimeout(done, Math.max(0, ms), "timeout");
    signal?.addEventListener("abort", onAbort, { once: true });
    p?.then(
      () => done("settled"),
      () => done("settled"),
    );
  });
}

/** Resolves true after `ms`, or false as soon as `signal` aborts (at once if it has). Never rejects. */
export async function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  return (await race(undefined, ms, signal)) === "timeout";
}

/**
 * Resolves true when `p` settles (either way) within `ms`, false on timeout or when `signal` aborts
 * first. A promise already settled wins over a spent budget. `p` keeps running. Never rejects.
 */
export async function settlesWithin(p: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<boolean> {
  return (await race(p, ms, signal)) === "settled";
}
