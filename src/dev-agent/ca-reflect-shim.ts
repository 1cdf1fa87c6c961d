// @peculiar/x509 registers its algorithms through tsyringe, which refuses to load without a
// Reflect metadata API, and reflect-metadata is not a dependency. This is the little it needs
// (same shim as test/agent and test/certs). ca-certs.ts imports it before "@peculiar/x509".
type Target = object;
const store = new WeakMap<Target, Map<string | symbol | undefined, Map<unknown, unknown>>>();

function own(target: Target, prop: string | symbol | undefined, create: boolean): Map<unknown, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let m = byProp.get(prop);
  if (!m && create) {
    m = new Map();
    byProp.set(prop, m);
  }
  return m;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== "function") {
  const getOwnMetadata = (key: unknown, target: Target, prop?: string | symbol): unknown => own(target, prop, false)?.get(key);
  const getMetadata = (key: unknown, target: Target, prop?: string | symbol): unknown => {
    for (let t: Target | null = target; t; t = Object.getPrototypeOf(t) as Target | null) {
      const m = own(t, prop, false);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: Target, prop?: string | symbol): void => {
    own(target, prop, true)!.set(key, value);
  };
  Object.assign(R, {
    getOwnMetadata,
    getMetadata,
    defineMetadata,
    hasMetadata: (key: unknown, target: Target, prop?: string | symbol) => getMetadata(key, target, prop) !== undefined,
    hasOwnMetadata: (key: unknown, target: Target, prop?: string | symbol) => own(target, prop, false)?.has(key) ?? false,
    metadata: (key: unknown, value: unknown) => (target: Target, prop?: string | symbol) => defineMetadata(key, value, target, prop),
  });
}
export {};
