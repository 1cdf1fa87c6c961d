/** The outcome of a data-path step: a value, or a machine-readable reason (STYLE §4). */
export type Result<T, R extends string> = { ok: true; value: T } | { ok: false; reason: R };

/** Wraps a value as a successful Result. */
export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** Wraps a reason as a failed Result. */
export function fail<R extends string>(reason: R): { ok: false; reason: R } {
  return { ok: false, reason };
}

/** Ends an exhaustive switch: a new union member becomes a compile error here. */
export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${String(x)}`);
}
