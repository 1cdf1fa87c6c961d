import type { Logger } from "pino";
import type { CaRoots, LeafCert } from "../agent/index.js";
import { checkMaterial, withRoots, type MaterialRejectReason, type TlsMaterial } from "./material.js";

export interface MaterialHolderDeps {
  log: Logger;
  now: () => number;
  /** Called with the reason each time an update is refused (for a metric); the old material stays. */
  onRejected?: (reason: MaterialRejectReason) => void;
}

/** The latest good TLS material, fed leaf and roots updates by whoever watches them. */
export interface MaterialHolder {
  setLeaf(leaf: LeafCert): void;
  setRoots(roots: CaRoots): void;
  /** The material in use, or undefined before the first good leaf + roots pair. */
  current(): TlsMaterial | undefined;
  /** Resolves with the current material, or the first good one; rejects when `signal` aborts or on close(). */
  ready(signal?: AbortSignal): Promise<TlsMaterial>;
  /** Calls `fn` with each newly published material (not the current one); returns the unsubscribe. */
  subscribe(fn: (m: TlsMaterial) => void): () => void;
  /** Drops subscribers and rejects pending ready() calls; later updates are ignored. Idempotent. */
  close(): void;
}

/**
 * Makes a holder that checks every leaf or roots change against the latest of the other (spec §9.6:
 * either replaces its half), publishes good material in one step and keeps the previous material
 * when an update is refused (STYLE §8).
 */
export function createMaterialHolder(deps: MaterialHolderDeps): MaterialHolder {
  let leaf: LeafCert | undefined;
  let roots: CaRoots | undefined;
  let material: TlsMaterial | undefined;
  let closed = false;
  const subscribers = new Set<(m: TlsMaterial) => void>();
  const waiters = new Set<{ resolve: (m: TlsMaterial) => void; reject: (e: unknown) => void }>();

  const rebuild = (changed: "leaf" | "roots"): void => {
    if (closed || leaf === undefined || roots === undefined) return; // wait for both halves
    const checked = checkMaterial(leaf, roots, deps.now());
    if (checked.ok) return publish(checked.value, "TLS material updated");
    // New roots while our leaf is out of its window (a rotation racing the leaf's renewal): peers
    // with leaves from the new root must verify now, not when our next leaf comes.
    const trusted = changed === "roots" && isWindow(checked.reason) && material !== undefined ? withRoots(material, roots) : undefined;
    if (trusted !== undefined) return publish(trusted, `applied new roots; our leaf is ${checked.reason} and its renewal is awaited`, "warn");
    deps.log.warn(
      { reason: checked.reason, leafSerial: leaf.serialNumber, rootIds: roots.roots.map((r) => r.id), kept: material?.leafSerial },
      material ? "refused TLS material update; kept the previous material" : "refused TLS material; not ready yet",
    );
    deps.onRejected?.(checked.reason);
  };

  const publish = (m: TlsMaterial, msg: string, level: "info" | "warn" = "info"): void => {
    material = m;
    deps.log[level]({ leafSerial: m.leafSerial, leafNotAfter: m.leafNotAfter.toISOString(), rootFingerprints: m.rootFingerprints }, msg);
    for (const w of waiters) w.resolve(m);
    waiters.clear();
    for (const fn of subscribers) {
      try {
        fn(m);
      } catch (err) {
        deps.log.error({ err }, "TLS material subscriber failed");
      }
    }
  };

  return {
    setLeaf(next) {
      leaf = next;
      rebuild("leaf");
    },
    setRoots(next) {
      roots = next;
      rebuild("roots");
    },
    current: () => material,
    ready(signal) {
      if (material !== undefined) return Promise.resolve(material);
      if (closed) return Promise.reject(new Error("cert store closed"));
      if (signal?.aborted) return Promise.reject(signal.reason);
      return new Promise<TlsMaterial>((resolve, reject) => {
        const onAbort = (): void => {
          waiters.delete(w);
          reject(signal!.reason);
        };
        const w = {
          resolve: (m: TlsMaterial) => {
            signal?.removeEventListener("abort", onAbort);
            resolve(m);
          },
          reject: (e: unknown) => {
            signal?.removeEventListener("abort", onAbort);
            reject(e);
          },
        };
        waiters.add(w);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    subscribe(fn) {
      if (closed) return () => {};
      subscribers.add(fn);
      return () => void subscribers.delete(fn);
    },
    close() {
      if (closed) return;
      closed = true;
      subscribers.clear();
      for (const w of waiters) w.reject(new Error("cert store closed"));
      waiters.clear();
    },
  };
}

function isWindow(reason: MaterialRejectReason): boolean {
  return reason === "expired" || reason === "not_yet_valid";
}
