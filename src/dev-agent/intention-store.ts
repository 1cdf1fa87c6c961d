// Intentions and `service-intentions` config entries as one store, as in Consul ≥ 1.9 (spec §5,
// §12.3): one entry per destination holds its sources; the intentions API is a view over the
// entries (structs.ServiceIntentionsConfigEntry.ToIntention: an intention carries its entry's
// Meta and Raft indexes, or its own LegacyMeta when it was created through the legacy ID API).
// Every write bumps the "intentions" and "config-entries" tables.

import { HttpError } from "./http-error.js";
import { compareIntentions, precedenceOf, type Intention, type IntentionName } from "./intentions-model.js";

export const INTENTIONS_TABLE = "intentions";
export const CONFIG_ENTRIES_TABLE = "config-entries";

/** An intention as written: identity, action or permissions, and legacy fields. */
export type IntentionInput = Omit<Intention, "precedence" | "createIndex" | "modifyIndex">;

/** A `service-intentions` entry: the destination, its entry-level Meta and its sources in evaluation order. */
export interface IntentionsEntry {
  destination: IntentionName;
  meta: Record<string, string> | undefined;
  /** Sources as intentions, highest precedence first (stable for equal precedence, as Consul sorts). */
  sources: Intention[];
  createIndex: number;
  modifyIndex: number;
}

interface EntryState {
  destination: IntentionName;
  meta: Record<string, string> | undefined;
  /** Keyed by source identity, in write order. */
  sources: Map<string, IntentionInput>;
  createIndex: number;
  modifyIndex: number;
}

/** The intentions the dev agent holds, as entries and as the intentions view. */
export interface IntentionStore {
  /** Every intention, highest precedence first (spec §5.3 ordering). */
  list(): readonly Intention[];
  getExact(src: IntentionName, dst: IntentionName): Intention | undefined;
  getById(id: string): Intention | undefined;
  /** Creates or replaces one source by (source, destination); `replaceKey` moves a legacy intention. */
  put(i: IntentionInput, opts?: { replaceKey?: string }): Intention;
  deleteExact(src: IntentionName, dst: IntentionName): boolean;
  deleteById(id: string): boolean;
  /** Every entry, sorted by destination name. */
  entries(): IntentionsEntry[];
  entry(destinationName: string): IntentionsEntry | undefined;
  /** Replaces a whole entry (PUT /v1/config); `cas` fails (false) unless it equals the ModifyIndex (0: must not exist). */
  putEntry(e: { destination: IntentionName; meta: Record<string, string> | undefined; sources: IntentionInput[] }, cas?: number): boolean;
  /** Deletes a whole entry; `cas` as for putEntry. True when deleted (or absent without cas). */
  deleteEntry(destinationName: string, cas?: number): boolean;
}

/** Checks a proposed entry before it is stored (the protocol rule of L7 permissions); throws an HttpError. */
export type EntryCheck = (destination: string, meta: Record<string, string> | undefined, sources: readonly IntentionInput[]) => void;

/** The identity of a source within its entry: peer, partition, namespace and name. */
export function sourceKey(i: Pick<Intention, "sourcePeer" | "sourcePartition" | "sourceNS" | "sourceName">): string {
  return `${i.sourcePeer ?? ""}|${i.sourcePartition}/${i.sourceNS}/${i.sourceName}`;
}

function destKey(d: IntentionName): string {
  return `${d.partition}/${d.ns}/${d.name}`;
}

/** The store key of an intention: what `put`'s `replaceKey` takes. */
export function intentionKey(i: IntentionInput): string {
  return `${sourceKey(i)}|${destKey({ partition: i.destinationPartition, ns: i.destinationNS, name: i.destinationName })}`;
}

function destOf(i: IntentionInput): IntentionName {
  return { partition: i.destinationPartition, ns: i.destinationNS, name: i.destinationName };
}

/** Creates the empty store; `check` runs before every write (spec §12.3: L7 needs an HTTP protocol). */
export function createIntentionStore(feed: { bump(...tables: string[]): number }, check: EntryCheck = () => undefined): IntentionStore {
  const byDest = new Map<string, EntryState>();
  let sorted: Intention[] | undefined;

  const view = (e: EntryState, s: IntentionInput): Intention => ({
    ...s,
    // ToIntention: entry Meta, unless the intention came through the legacy ID API (its LegacyMeta)
    ...(s.id ? {} : e.meta ? { meta: e.meta } : { meta: undefined }),
    precedence: precedenceOf(s),
    createIndex: e.createIndex,
    modifyIndex: e.modifyIndex,
  });
  const entryView = (e: EntryState): IntentionsEntry => ({
    destination: e.destination,
    meta: e.meta,
    sources: [...e.sources.values()].map((s) => view(e, s)).sort((a, b) => b.precedence - a.precedence),
    createIndex: e.createIndex,
    modifyIndex: e.modifyIndex,
  });

  /** Applies one write to an entry: validates, stamps the indexes, drops the entry when no source is left. */
  function write(dest: IntentionName, mutate: (sources: Map<string, IntentionInput>) => Record<string, string> | undefined | "keep"): void {
    const key = destKey(dest);
    const prev = byDest.get(key);
    const sources = new Map(prev?.sources ?? []);
    const given = mutate(sources);
    const meta = given === "keep" ? prev?.meta : given;
    if (sources.size > 0) check(dest.name, meta, [...sources.values()]);
    sorted = undefined;
    const index = feed.bump(INTENTIONS_TABLE, CONFIG_ENTRIES_TABLE); // readers wake in a later microtask
    if (sources.size === 0) {
      byDest.delete(key);
      return;
    }
    byDest.set(key, {
      destination: dest,
      meta,
      sources,
      createIndex: prev?.createIndex ?? index,
      modifyIndex: index,
    });
  }

  const all = (): Intention[] => [...byDest.values()].flatMap((e) => [...e.sources.values()].map((s) => view(e, s)));

  const store: IntentionStore = {
    list: () => (sorted ??= all().sort(compareIntentions)),
    getExact: (src, dst) => {
      const e = byDest.get(destKey(dst));
      const s = e?.sources.get(sourceKey({ sourcePeer: src.peer, sourcePartition: src.partition, sourceNS: src.ns, sourceName: src.name }));
      return e && s ? view(e, s) : undefined;
    },
    getById: (id) => all().find((i) => i.id === id),
    put(input, opts = {}) {
      if (opts.replaceKey && opts.replaceKey !== intentionKey(input)) {
        const old = all().find((i) => intentionKey(i) === opts.replaceKey);
        if (old) store.deleteExact({ partition: old.sourcePartition, ns: old.sourceNS, name: old.sourceName, ...(old.sourcePeer ? { peer: old.sourcePeer } : {}) }, destOf(old));
      }
      write(destOf(input), (sources) => {
        sources.set(sourceKey(input), input);
        return "keep";
      });
      return store.getExact(
        { partition: input.sourcePartition, ns: input.sourceNS, name: input.sourceName, ...(input.sourcePeer ? { peer: input.sourcePeer } : {}) },
        destOf(input),
      )!;
    },
    deleteExact(src, dst) {
      const k = sourceKey({ sourcePeer: src.peer, sourcePartition: src.partition, sourceNS: src.ns, sourceName: src.name });
      if (!byDest.get(destKey(dst))?.sources.has(k)) return false;
      write(dst, (sources) => {
        sources.delete(k);
        return "keep";
      });
      return true;
    },
    deleteById(id) {
      const i = store.getById(id);
      if (!i) return false;
      return store.deleteExact({ partition: i.sourcePartition, ns: i.sourceNS, name: i.sourceName, ...(i.sourcePeer ? { peer: i.sourcePeer } : {}) }, destOf(i));
    },
    entries: () => [...byDest.values()].map(entryView).sort((a, b) => (a.destination.name < b.destination.name ? -1 : 1)),
    entry: (name) => {
      const e = byDest.get(destKey({ partition: "default", ns: "default", name }));
      return e ? entryView(e) : undefined;
    },
    putEntry(e, cas) {
      const prev = byDest.get(destKey(e.destination));
      if (cas !== undefined && (prev?.modifyIndex ?? 0) !== cas) return false;
      if (e.sources.length === 0) throw new HttpError(500, "At least one source is required");
      write(e.destination, (sources) => {
        sources.clear();
        for (const s of e.sources) sources.set(sourceKey(s), s);
        return e.meta;
      });
      return true;
    },
    deleteEntry(name, cas) {
      const key = destKey({ partition: "default", ns: "default", name });
      const prev = byDest.get(key);
      if (cas !== undefined && (prev?.modifyIndex ?? 0) !== cas) return false;
      if (!prev) return cas === undefined;
      write(prev.destination, (sources) => {
        sources.clear();
        return undefined;
      });
      return true;
    },
  };
  return store;
}

/** True when every source of the entry came through the legacy ID API (Consul's LegacyIDFieldsAreAllSet). */
export function allLegacy(e: IntentionsEntry | undefined): boolean {
  return !e || e.sources.every((s) => s.id !== undefined && s.id !== "");
}
