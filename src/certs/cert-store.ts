import type { AgentClient, AgentError } from "../agent/index.js";
import { caRootsWatch, leafWatch, watch } from "../agent/index.js";
import { createMaterialHolder, type MaterialHolderDeps } from "./material-holder.js";
import type { TlsMaterial } from "./material.js";

/** The sidecar's TLS material, kept current by the leaf and roots watches. */
export interface CertStore {
  /** The material in use, or undefined before the first good leaf + roots pair. */
  current(): TlsMaterial | undefined;
  /** Resolves with the first good material; rejects when `signal` aborts or the store closes first. */
  ready(signal?: AbortSignal): Promise<TlsMaterial>;
  /** Calls `fn` with each new material (say, to call server.setSecureContext); returns the unsubscribe. */
  subscribe(fn: (m: TlsMaterial) => void): () => void;
  /** Stops both watches and drops subscribers. Idempotent. */
  close(): void;
}

/**
 * Starts the leaf watch for `opts.service` (the service NAME, spec §3) and the roots watch, and
 * checks and publishes material on every change. Watch errors are retried by the watch itself and
 * logged here; a refused update keeps the previous material (see createMaterialHolder).
 */
export function createCertStore(agent: AgentClient, opts: { service: string }, deps: MaterialHolderDeps): CertStore {
  const holder = createMaterialHolder(deps);
  const stop = new AbortController();

  const follow = async <T>(name: string, iterable: AsyncIterable<T>, apply: (v: T) => void): Promise<void> => {
    try {
      for await (const v of iterable) apply(v);
    } catch (err) {
      // watch() ends without throwing on abort and retries errors; reaching here is a bug worth a loud line.
      if (!stop.signal.aborted) deps.log.error({ err, watch: name }, "certificate watch ended unexpectedly");
    }
  };
  const onError = (name: string) => (err: AgentError, failures: number): void => {
    deps.log.warn({ watch: name, code: err.code, status: err.status, failures, msg: err.message }, "certificate watch failed; retrying");
  };

  void follow("leaf", watch(agent, leafWatch(opts.service), { signal: stop.signal, onError: onError("leaf") }), holder.setLeaf);
  void follow("roots", watch(agent, caRootsWatch, { signal: stop.signal, onError: onError("roots") }), holder.setRoots);

  return {
    current: holder.current,
    ready: holder.ready,
    subscribe: holder.subscribe,
    close() {
      stop.abort();
      holder.close();
    },
  };
}
