// The authorization decision cache: the verdict for (source SPIFFE ID → this service).
//
// A hit is answered from memory with no I/O and no await (`peek`). A miss asks the agent
// (`POST /v1/agent/connect/authorize`, spec §4), and concurrent misses for one source share
// one request. Freshness comes from a blocking watch on the intentions that match this
// service (spec §5.3): each change starts a new policy generation, every cached decision is
// re-checked under it, and a source that flips allow → denied is announced to `onRevoke`
// subscribers so that its live connections can be closed. When the agent cannot answer,
// cached decisions keep serving up to `maxStaleMs` after their last successful check
// (stale-if-error); anything else is `authz_unavailable`: fail closed, never open.
import { AgentError, authorize, checkDefaultIntention, intentionMatchWatch, watch } from "../agent/index.js";
import type { AgentClient, Intention, SpiffeUri } from "../agent/index.js";
import { ConfigError } from "../net/index.js";
import type { Logger, Metrics } from "../ops/index.js";
import {
  createDecisionCounts,
  decisionSlot,
  SLOT_ALLOW_CACHE,
  SLOT_ALLOW_STALE,
  SLOT_DENIED_CACHE,
  SLOT_DENIED_STALE,
} from "./decision-counts.js";
import type { DecisionSource } from "./decision-counts.js";
import { intentionFor, type L7Source } from "./l7.js";
import type { Verdict } from "./verdict.js";

export type { Verdict } from "./verdict.js";

/** Decisions for one target service; see the file comment. */
export interface Authorizer {
  /** The cached verdict when it may be served now, else undefined. No I/O, no await, no allocation. */
  peek(src: SpiffeUri): Verdict | undefined;
  /** The verdict, asking the agent on a miss (one shared request per source). Never rejects. */
  decide(src: SpiffeUri, serial: string): Promise<Verdict>;
  /**
   * The intention that decides for `src`, from the watched match list (no I/O): the first of
   * highest precedence whose source matches. Undefined when none matches, or the list is not known
   * (the watch has not answered, or has failed longer than maxStaleMs, or the authorizer is closed).
   */
  intentionFor(src: L7Source): Intention | undefined;
  /**
   * What a request that matches none of an L7 intention's permissions gets: Consul's default policy
   * (spec §12.3), learned from intentions/check with a source no intention names after each change
   * of a list holding L7 intentions. "deny" while unknown, or when a `*` intention hides the default.
   */
  l7Default(): "allow" | "deny";
  /** Calls `fn` with each source whose cached allow became denied. Returns the unsubscribe function. */
  onRevoke(fn: (src: SpiffeUri) => void): () => void;
  /** Number of cached decisions. */
  size(): number;
  /** Stops the watch, timers and requests; later decisions are `authz_unavailable`. Idempotent. */
  close(): void;
}

export interface AuthorizerDeps {
  log: Logger;
  metrics?: Metrics;
  now: () => number;
}

export interface AuthorizerOptions {
  /** The service this sidecar fronts: authorize's `Target`, and the intention match name. */
  target: string;
  /** How long after its last successful check a decision may still be served while the agent fails. */
  maxStaleMs: number;
  /** Entries unused this long are dropped. Default 3 days (Consul's own agent cache TTL). */
  idleEvictMs?: number;
  /** Announce allow → denied flips to onRevoke subscribers. Default true. */
  revokeLive?: boolean;
  /** Parallel authorize calls while re-checking after an intention change. Default 8. */
  recheckConcurrency?: number;
  /** Period of the idle-eviction sweep. Default min(idleEvictMs / 4, 1 h). */
  sweepIntervalMs?: number;
}

/** Consul's agent cache evicts entries unused for 3 days (agent/cache `DefaultLastGetTTL` = 72h). */
export const DEFAULT_IDLE_EVICT_MS = 3 * 24 * 3_600_000;
const DEFAULT_RECHECK_CONCURRENCY = 8;
const MAX_SWEEP_INTERVAL_MS = 3_600_000;
/** A decide that keeps seeing newer policy generations while it waits gives up (fail closed) after this. */
const MAX_DECIDE_ROUNDS = 5;

/** One cached decision. Mutated in place so that a hit allocates nothing. */
interface Entry {
  verdict: "allow" | "denied";
  /** The serial last presented by this source; authorize requires one when re-checking. */
  serial: string;
  /** The policy generation this verdict was checked under. */
  gen: number;
  /** deps.now() of the last successful agent answer for this source. */
  checkedMs: number;
  /** deps.now() of the last decision that used this entry. */
  usedMs: number;
}

/** A settled decision: what to return and which counter slot it goes to. Shared constants. */
interface Outcome {
  readonly verdict: Verdict;
  readonly slot: number;
}

function outcome(verdict: Verdict, source: DecisionSource): Outcome {
  return Object.freeze({ verdict, slot: decisionSlot(verdict, source) });
}
const ALLOW_AGENT = outcome("allow", "agent");
const DENIED_AGENT = outcome("denied", "agent");
const ALLOW_STALE = outcome("allow", "stale");
const DENIED_STALE = outcome("denied", "stale");
const UNAVAILABLE = outcome("authz_unavailable", "agent");

/**
 * How far cached decisions can be trusted. `healthy`: the intention watch has answered since
 * its last error, so a change would have reached us and entries of the current generation are
 * fresh. `starting` / `failing`: entries are served only within maxStaleMs of their last check.
 */
type WatchHealth = "starting" | "healthy" | "failing" | "closed";

/**
 * Creates the authorizer and starts its intention watch. Throws ConfigError for a bad option;
 * agent failures never throw here (they surface as verdicts).
 */
export function createAuthorizer(agent: AgentClient, deps: AuthorizerDeps, opts: AuthorizerOptions): Authorizer {
  const { log, now } = deps;
  const target = opts.target;
  const maxStaleMs = opts.maxStaleMs;
  const idleEvictMs = opts.idleEvictMs ?? DEFAULT_IDLE_EVICT_MS;
  const revokeLive = opts.revokeLive ?? true;
  const concurrency = opts.recheckConcurrency ?? DEFAULT_RECHECK_CONCURRENCY;
  const sweepIntervalMs = opts.sweepIntervalMs ?? Math.min(idleEvictMs / 4, MAX_SWEEP_INTERVAL_MS);
  if (target === "") throw new ConfigError("authz.target", "must name the proxied service");
  if (!(maxStaleMs >= 0)) throw new ConfigError("authz.maxStaleMs", "must be ≥ 0");
  if (!(idleEvictMs > 0)) throw new ConfigError("authz.idleEvictMs", "must be > 0");
  if (!(concurrency >= 1)) throw new ConfigError("authz.recheckConcurrency", "must be ≥ 1");
  if (!(sweepIntervalMs > 0)) throw new ConfigError("authz.sweepIntervalMs", "must be > 0");

  const entries = new Map<SpiffeUri, Entry>();
  /** At most one authorize call per source and generation. */
  const inflight = new Map<SpiffeUri, { gen: number; promise: Promise<Outcome> }>();
  const revokeSubscribers = new Set<(src: SpiffeUri) => void>();
  const counts = createDecisionCounts(deps.metrics);
  const pending = counts.pending;
  const cacheGauge = deps.metrics?.authzCacheEntries;
  const stop = new AbortController();
  /** Policy generation: bumped by every intention change; entries of an older one are not fresh. */
  let gen = 0;
  let health: WatchHealth = "starting";
  /** The last intention match answer, and when it came (deps.now()); the L7 checks read it. */
  let intentions: { list: Intention[]; atMs: number } | undefined;
  /** See l7Default(); `defaultAsk` numbers the questions so that only the latest answer counts. */
  let l7Default: "allow" | "deny" = "deny";
  let defaultAsk = 0;
  /** Failure classes already logged (log once, not per connection); "acl" is forgotten on a success. */
  const loggedFailures = new Set<string>();

  const sweepTimer = setInterval(sweepIdle, sweepIntervalMs);
  sweepTimer.unref();
  deps.metrics?.authzDecisionBatches.add(counts.flush);
  void followIntentions();

  /** Read through a call: TypeScript would otherwise keep a narrowing of `health` across awaits. */
  function isClosed(): boolean {
    return health === "closed";
  }

  /** Whether `e` may be served at `t`; drops it when idle too long. */
  function servable(src: SpiffeUri, e: Entry, t: number): boolean {
    if (t - e.usedMs > idleEvictMs) {
      drop(src);
      return false;
    }
    if (e.gen !== gen) return false; // an intention change is being re-checked
    return health === "healthy" || t - e.checkedMs <= maxStaleMs;
  }

  function peek(src: SpiffeUri): Verdict | undefined {
    const e = entries.get(src);
    if (e === undefined) return undefined;
    const t = now();
    if (!servable(src, e, t)) return undefined;
    e.usedMs = t;
    // While the watch fails, a hit is not known to be current: count it as stale.
    const allow = e.verdict === "allow";
    const slot = health === "failing" ? (allow ? SLOT_ALLOW_STALE : SLOT_DENIED_STALE) : allow ? SLOT_ALLOW_CACHE : SLOT_DENIED_CACHE;
    pending[slot]! += 1;
    return e.verdict;
  }

  async function decide(src: SpiffeUri, serial: string): Promise<Verdict> {
    if (health === "closed") return "authz_unavailable";
    const hit = peek(src);
    if (hit !== undefined) return hit;
    let out = UNAVAILABLE;
    for (let round = 0; round < MAX_DECIDE_ROUNDS; round++) {
      const asked = gen;
      out = await ensureCheck(src, serial);
      // An answer that raced an intention change may predate it: ask again under the new policy,
      // so that no connection is admitted on a verdict the re-check pass could miss.
      if (asked === gen || isClosed()) break;
      out = UNAVAILABLE;
    }
    if (isClosed()) return "authz_unavailable";
    const e = entries.get(src);
    if (e !== undefined) e.usedMs = now();
    pending[out.slot]! += 1;
    return out.verdict;
  }

  /** The in-flight check for `src` under the current generation, or a new one. Never rejects. */
  function ensureCheck(src: SpiffeUri, serial: string): Promise<Outcome> {
    const running = inflight.get(src);
    if (running !== undefined && running.gen === gen) return running.promise;
    const flight = { gen, promise: check(src, serial, gen) };
    inflight.set(src, flight);
    void flight.promise.then(() => {
      if (inflight.get(src) === flight) inflight.delete(src);
    });
    return flight.promise;
  }

  async function check(src: SpiffeUri, serial: string, g: number): Promise<Outcome> {
    let authorized: boolean;
    try {
      const res = await authorize(agent, { target, clientCertUri: src, clientCertSerial: serial }, stop.signal);
      authorized = res.authorized;
    } catch (err) {
      return outcomeOfError(src, err);
    }
    // A token fixed (SIGHUP) and broken again deserves a new error line; per-request failures stay logged once.
    if (loggedFailures.delete("acl")) log.info({ target }, "authorize accepts the sidecar's token again");
    store(src, serial, authorized ? "allow" : "denied", g);
    return authorized ? ALLOW_AGENT : DENIED_AGENT;
  }

  function store(src: SpiffeUri, serial: string, verdict: "allow" | "denied", g: number): void {
    if (health === "closed") return;
    const t = now();
    const e = entries.get(src);
    if (e === undefined) {
      entries.set(src, { verdict, serial, gen: g, checkedMs: t, usedMs: t });
      cacheGauge?.inc();
      return;
    }
    if (g < e.gen) return; // a slower answer from before an intention change
    const was = e.verdict;
    e.verdict = verdict;
    e.serial = serial;
    e.gen = g;
    e.checkedMs = t;
    if (was === "allow" && verdict === "denied") revoke(src);
  }

  function revoke(src: SpiffeUri): void {
    log.info({ source: src, target, revokeLive }, "intentions now deny a source that was allowed");
    if (!revokeLive) return;
    for (const fn of revokeSubscribers) {
      try {
        fn(src);
      } catch (err) {
        log.error({ err, source: src }, "an onRevoke subscriber threw");
      }
    }
  }

  /** What a failed authorize means for this decision: stale-if-error for agent trouble, else fail closed. */
  function outcomeOfError(src: SpiffeUri, err: unknown): Outcome {
    if (stop.signal.aborted) return UNAVAILABLE;
    if (!(err instanceof AgentError)) {
      logOnce("unexpected", () => log.error({ err, target }, "authorize failed unexpectedly: denying undecided sources"));
      return UNAVAILABLE;
    }
    switch (err.code) {
      case "unreachable":
      case "bad_body":
        return staleOrUnavailable(src);
      case "http_status":
        // 5xx and 429 are the agent (or its servers) in trouble; other statuses are our request.
        if (err.status === undefined || err.status >= 500 || err.status === 429) return staleOrUnavailable(src);
        logOnce(`status:${err.status}`, () =>
          log.error({ target, status: err.status, err: err.message }, "authorize rejected the request: denying undecided sources"),
        );
        return UNAVAILABLE;
      case "acl_denied":
      case "acl_not_found":
        // spec §4, §11.3: the token is wrong, not the peer. Say how to fix it, once. A source decided
        // before keeps its decision up to maxStaleMs, as when the agent is down: a revoked or
        // mis-scoped token is the control plane failing us, not a verdict on the source (Envoy keeps
        // its last RBAC config when its xDS token is refused), and the intentions watch fails on the
        // same token, so no newer policy is known either.
        logOnce("acl", () =>
          log.error(
            { target, code: err.code, err: err.message },
            `authorize refused the sidecar's token: it needs service:write on "${target}" (spec §11.3). ` +
              "Sources decided before keep their decision for -authz-max-stale; every other source is refused (authz_unavailable) until the token is fixed",
          ),
        );
        return staleOrUnavailable(src);
      case "not_found":
      case "aborted":
        logOnce(err.code, () => log.error({ target, code: err.code, err: err.message }, "authorize failed: denying undecided sources"));
        return UNAVAILABLE;
    }
  }

  function staleOrUnavailable(src: SpiffeUri): Outcome {
    const e = entries.get(src);
    if (e === undefined || now() - e.checkedMs > maxStaleMs) return UNAVAILABLE;
    return e.verdict === "allow" ? ALLOW_STALE : DENIED_STALE;
  }

  function logOnce(key: string, write: () => void): void {
    if (loggedFailures.has(key)) return;
    loggedFailures.add(key);
    write();
  }

  /** Follows the intentions matching the target; each real change re-checks every cached decision. */
  async function followIntentions(): Promise<void> {
    let first = true;
    let lastPolicy = "";
    try {
      for await (const list of watch(agent, intentionMatchWatch(target), { signal: stop.signal, onError: onWatchError })) {
        if (health === "closed") return;
        if (health === "failing") log.info({ target }, "intention watch recovered");
        health = "healthy";
        intentions = { list, atMs: now() };
        const policy = policyKey(list);
        const changed = policy !== lastPolicy;
        if (changed) void learnL7Default(list);
        lastPolicy = policy;
        // The first answer is the baseline; decisions made before it arrived are re-checked against it.
        if (first ? entries.size === 0 : !changed) {
          first = false;
          continue;
        }
        first = false;
        gen += 1;
        void recheckAll(gen);
      }
    } catch (err) {
      // watch() documents that it never throws; if it ever does, age entries out rather than trust them.
      if (health !== "closed") {
        health = "failing";
        log.error({ err, target }, "intention watch ended unexpectedly: cached decisions now expire after maxStaleMs");
      }
    }
  }

  // The default is the agent's configuration, not the intentions': an intention change does not
  // move it, so what was learned keeps serving while it is asked again (no window of 403s after each
  // edit in a default-allow mesh). A `*` intention hides it: then deny.
  async function learnL7Default(list: Intention[]): Promise<void> {
    const ask = ++defaultAsk;
    if (list.some((i) => i.sourceName === "*")) l7Default = "deny";
    if (!list.some((i) => i.permissions.length > 0) || list.some((i) => i.sourceName === "*")) return;
    try {
      const allowed = await checkDefaultIntention(agent, target, "sidecar", stop.signal);
      if (ask === defaultAsk && health !== "closed") l7Default = allowed ? "allow" : "deny";
    } catch (err) {
      if (ask === defaultAsk && !stop.signal.aborted)
        log.warn({ target, err: (err as Error).message, default: l7Default }, "cannot learn the default intention policy: the last one learned stays (deny if none)");
    }
  }

  function onWatchError(err: AgentError, failures: number): void {
    if (health === "closed") return;
    health = "failing";
    if (failures !== 1) return;
    if (err.code === "acl_denied" || err.code === "acl_not_found") {
      log.error(
        { target, code: err.code, err: err.message },
        `intention watch refused the sidecar's token: it needs intentions:read on "${target}" (spec §11.3); ` +
          "intention changes are not seen, cached decisions are re-asked after maxStaleMs",
      );
    } else {
      log.warn({ target, code: err.code, err: err.message }, "intention watch failing: cached decisions are served up to maxStaleMs");
    }
  }

  /** Re-asks authorize for every cached source under generation `g`; stops when a newer one starts. */
  async function recheckAll(g: number): Promise<void> {
    // Allowed sources first: only an allow → denied flip has live connections waiting to be cut.
    const sources: SpiffeUri[] = [];
    for (const [src, e] of entries) if (e.verdict === "allow") sources.push(src);
    for (const [src, e] of entries) if (e.verdict !== "allow") sources.push(src);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < sources.length && g === gen && health !== "closed") {
        const src = sources[next++]!;
        const e = entries.get(src);
        if (e !== undefined && e.gen < g) await ensureCheck(src, e.serial);
      }
    };
    const workers: Array<Promise<void>> = [];
    for (let i = 0; i < Math.min(concurrency, sources.length); i++) workers.push(worker());
    await Promise.all(workers);
  }

  function sweepIdle(): void {
    const t = now();
    for (const [src, e] of entries) if (t - e.usedMs > idleEvictMs) drop(src);
  }

  function drop(src: SpiffeUri): void {
    if (entries.delete(src)) cacheGauge?.dec();
  }

  return {
    peek,
    decide,
    intentionFor(src) {
      if (intentions === undefined || health === "closed") return undefined;
      // While the watch fails, the list is trusted as long as a cached decision would be.
      if (health !== "healthy" && now() - intentions.atMs > maxStaleMs) return undefined;
      return intentionFor(intentions.list, src);
    },
    l7Default: () => l7Default,
    onRevoke(fn) {
      revokeSubscribers.add(fn);
      return () => void revokeSubscribers.delete(fn);
    },
    size: () => entries.size,
    close() {
      if (health === "closed") return;
      health = "closed";
      stop.abort();
      clearInterval(sweepTimer);
      deps.metrics?.authzDecisionBatches.delete(counts.flush);
      counts.flush();
      if (entries.size > 0) cacheGauge?.dec(entries.size);
      entries.clear();
      intentions = undefined;
      revokeSubscribers.clear();
    },
  };
}

/** A canonical text of what authorize decides from, so an unrelated index bump is not a change. */
function policyKey(list: Intention[]): string {
  return JSON.stringify(list);
}
