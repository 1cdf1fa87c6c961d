// Shared fast-check pieces for the fuzz folder: bounded run counts, JSON mutation by path, and a
// check that a thrown error is the one documented type.
import assert from "node:assert/strict";
import fc from "fast-check";

/** Runs per property: enough to find shallow crashes, small enough that the folder stays < 20 s. */
export const RUNS = 300;

/** Names that live on Object.prototype: a parser that reads `o[name]` without hasOwn sees them. */
export const PROTOTYPE_NAMES = [
  "__proto__",
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toLocaleString",
  "__defineGetter__",
  "__lookupGetter__",
] as const;

/** A JSON value, as JSON.parse would hand it to a parser (own `__proto__` keys included). */
export const jsonBody: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 4 }).chain((v) =>
  typeof v === "object" && v !== null && !Array.isArray(v)
    ? fc.constantFrom<unknown>(v, JSON.parse(JSON.stringify({ ...v, ["__proto__"]: { x: 1 } })))
    : fc.constant<unknown>(v),
);

/** Every path (array of keys/indexes) to a value inside `v`, the root included. */
export function pathsOf(v: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...pathsOf(x, [...prefix, i])));
  else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...prefix, k]));
  }
  return out;
}

/** A deep copy of `v` with the value at `path` replaced (or deleted when `replacement` is DELETE). */
export const DELETE = Symbol("delete");
export function replaceAt(v: unknown, path: Array<string | number>, replacement: unknown): unknown {
  if (path.length === 0) return replacement === DELETE ? undefined : replacement;
  const copy: unknown = structuredClone(v);
  let cur = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (replacement === DELETE) {
    if (Array.isArray(cur)) cur.splice(last as number, 1);
    else delete cur[last];
  } else {
    Object.defineProperty(cur, last, { value: replacement, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/** A valid body with one value somewhere swapped for arbitrary JSON, or removed. */
export function mutated(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return valid.chain((body) => {
    const paths = pathsOf(body);
    return fc
      .tuple(fc.constantFrom(...paths), fc.oneof(fc.constant<unknown>(DELETE), fc.jsonValue({ maxDepth: 2 })))
      .map(([path, repl]) => replaceAt(body, path, repl));
  });
}

/**
 * Runs `fn` and returns its value, or the error it threw after asserting that the error is an
 * instance of `type` and passes `check`. Any other throw fails the property with the input shown.
 */
export function expectOnly<T, E extends Error>(
  fn: () => T,
  type: new (...args: never[]) => E,
  check: (err: E) => void,
): { ok: true; value: T } | { ok: false; err: E } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (!(err instanceof type)) assert.fail(`threw ${(err as Error)?.name ?? typeof err}: ${String((err as Error)?.message ?? err)}`);
    check(err);
    return { ok: false, err };
  }
}
