import { randomUUID } from "node:crypto";
import { formatGoDuration, tryParseGoDuration } from "../net/index.js";
import { blockingParams, blockingRead } from "./blocking.js";
import {
  certPem,
  colonHex,
  createRootCert,
  generateSigningKey,
  importSigningKey,
  keyMatchesCert,
  parseCert,
  serialHex,
  sha1Fingerprint,
  signingKeyIdOf,
  signLeaf,
  supportedKey,
  type CaKeyType,
  type SigningKey,
} from "./ca-certs.js";
import type { X509Certificate } from "@peculiar/x509";
import type { DevAgentContext } from "./context.js";
import { decodeStrict, type Schema } from "./decode.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest, Reply, Route } from "./router.js";

const ROOTS = "roots";
const CA_CONFIG = "ca-config";
const AGENT_CACHE_WAIT_MS = 10 * 60_000; // spec §1.4: agent-cached endpoints default to 10 min
const ROOT_TTL_MS = 87_600 * 3_600_000;
const LEAF_BACKDATE_MS = 60_000; // spec §8.2: NotBefore = now − 1 min
const CA_CHANGE_JITTER_MS = 30_000; // spec §3.2: caChangeJitterWindow
const MIN_LEAF_TTL_MS = 1_000;
const MAX_LEAF_TTL_MS = 8_760 * 3_600_000;
const RENEW_RETRY_MS = 1_000;

export interface CaOptions {
  /** After a root rotation each cached leaf is reissued at a random point in [0, this). Default 30 s. */
  leafReissueWindowMs?: number;
}

interface RootEntry {
  id: string;
  serial: number;
  signingKeyId: string; // hex, no colons
  notBefore: Date;
  notAfter: Date;
  pem: string;
  active: boolean;
  key: SigningKey;
  cert: X509Certificate;
  createIndex: number;
  modifyIndex: number;
}

/** One issued leaf as `/v1/agent/connect/ca/leaf/:service` shows it (spec §3). */
export interface IssuedLeaf {
  service: string;
  serviceUri: string;
  serialNumber: string; // colon-hex
  certPem: string;
  privateKeyPem: string;
  validAfter: Date;
  validBefore: Date;
  signingKeyId: string;
  issuedAtMs: number;
  createIndex: number;
  modifyIndex: number;
}

interface LeafSlot {
  leaf: IssuedLeaf | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When the current leaf's normal renewal (spec §3.1) is due, epoch ms. */
  renewAtMs: number;
  inflight: Promise<IssuedLeaf> | undefined;
}

interface CaConfig {
  leafCertTtlMs: number;
  leafCertTtlText: string;
  intermediateCertTtlText: string;
  rootCertTtlText: string;
  privateKeyType: CaKeyType;
  privateKeyBits: number;
  csrMaxPerSecond: number;
  csrMaxConcurrent: number;
  skipValidate: boolean;
  rootCertPem: string | undefined;
  privateKeyPem: string | undefined;
  leafReissueWindowMs: number;
  createIndex: number;
  modifyIndex: number;
}

/** The dev agent's built-in `consul` CA: roots, leaves with renewal, rotation and configuration. */
export interface DevCa {
  /** `<cluster-uuid>.consul`. */
  readonly trustDomain: string;
  readonly clusterId: string;
  /** The root that signs new leaves. */
  activeRoot(): { id: string; signingKeyId: string; pem: string };
  /** Every trusted root PEM, active first. */
  rootPems(): string[];
  /** The cached leaf for `service`, reissued when missing, expired or signed by an old root. Rejects if signing fails. */
  leaf(service: string): Promise<IssuedLeaf>;
  /** Installs a new active root (generated, or from the given PEMs); leaves are reissued within the jitter window. */
  rotate(opts?: { privateKeyPem?: string; rootCertPem?: string; keyType?: CaKeyType; keyBits?: number }): Promise<void>;
  /** Stops every renewal timer. Idempotent. */
  close(): void;
}

interface CaInternals extends DevCa {
  ctx: DevAgentContext;
  roots: RootEntry[];
  config: CaConfig;
  slots: Map<string, LeafSlot>;
  cachedLeaf(service: string): IssuedLeaf | undefined;
}

/** Creates the CA: a cluster UUID, the trust domain and an EC P-256 root. Rejects if key generation fails. */
export async function createCa(ctx: DevAgentContext, opts: CaOptions = {}): Promise<DevCa> {
  const { cfg, feed, log } = ctx;
  const clusterId = randomUUID();
  const trustDomain = `${clusterId}.consul`;
  let serial = 0; // spec §3: one increasing counter for every cert the cluster issues
  let closed = false;
  const roots: RootEntry[] = [];
  const slots = new Map<string, LeafSlot>();
  const configIndex = feed.bump(CA_CONFIG);
  const config: CaConfig = {
    leafCertTtlMs: cfg.leafCertTtlMs,
    leafCertTtlText: cfg.leafCertTtlMs === 72 * 3_600_000 ? "72h" : formatGoDuration(cfg.leafCertTtlMs),
    intermediateCertTtlText: "8760h",
    rootCertTtlText: "87600h",
    privateKeyType: "ec",
    privateKeyBits: 256,
    csrMaxPerSecond: 50,
    csrMaxConcurrent: 0,
    skipValidate: false,
    rootCertPem: undefined,
    privateKeyPem: undefined,
    leafReissueWindowMs: opts.leafReissueWindowMs ?? CA_CHANGE_JITTER_MS,
    createIndex: configIndex,
    modifyIndex: configIndex,
  };

  const active = (): RootEntry => roots.find((r) => r.active)!;

  async function makeRoot(o: { privateKeyPem?: string; rootCertPem?: string; keyType: CaKeyType; keyBits: number }): Promise<Omit<RootEntry, "active" | "createIndex" | "modifyIndex">> {
    if (o.rootCertPem && !o.privateKeyPem) throw new HttpError(500, "must provide a private key when providing a root cert");
    const key = o.privateKeyPem ? importSigningKey(o.privateKeyPem) : await generateSigningKey(o.keyType, o.keyBits);
    let cert: X509Certificate;
    let rootSerial: number;
    if (o.rootCertPem) {
      cert = parseCert(o.rootCertPem);
      if (!(await keyMatchesCert(key, cert))) throw new HttpError(500, "private key does not match the root certificate");
      rootSerial = Number(BigInt(`0x${cert.serialNumber || "0"}`));
    } else {
      rootSerial = ++serial;
      const now = new Date();
      cert = await createRootCert({ key, serial: rootSerial, clusterId, notBefore: now, notAfter: new Date(now.getTime() + ROOT_TTL_MS) });
    }
    return {
      id: sha1Fingerprint(cert),
      serial: rootSerial,
      signingKeyId: signingKeyIdOf(cert),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      pem: certPem(cert),
      key,
      cert,
    };
  }

  function slotOf(service: string): LeafSlot {
    let s = slots.get(service);
    if (!s) slots.set(service, (s = { leaf: undefined, timer: undefined, renewAtMs: Infinity, inflight: undefined }));
    return s;
  }

  /** Issues a new leaf for `service` (one at a time per service) and wakes its blocked readers. */
  function issue(service: string): Promise<IssuedLeaf> {
    const slot = slotOf(service);
    if (slot.inflight) return slot.inflight;
    const p = (async () => {
      const root = active();
      const ttl = config.leafCertTtlMs;
      // spec §8.2 backdates by 1 min; for the dev agent's short TTLs we backdate at most a tenth
      // of the lifetime, so a 5 s leaf is not born expired. Certificates have 1 s resolution.
      const backdate = Math.min(LEAF_BACKDATE_MS, Math.floor(ttl / 10));
      const notBefore = new Date(Math.floor((Date.now() - backdate) / 1000) * 1000);
      const notAfter = new Date(notBefore.getTime() + Math.floor(ttl / 1000) * 1000);
      const uri = `spiffe://${trustDomain}/ns/default/dc/${cfg.datacenter}/svc/${service}`;
      const n = ++serial;
      const { cert, keyPem } = await signLeaf({ issuer: root.cert, issuerKeyId: root.signingKeyId, key: root.key, serial: n, uri, notBefore, notAfter });
      const index = feed.bump(`leaf:${service}`);
      const leaf: IssuedLeaf = {
        service,
        serviceUri: uri,
        serialNumber: colonHex(serialHex(n)),
        certPem: certPem(cert),
        privateKeyPem: keyPem,
        validAfter: notBefore,
        validBefore: notAfter,
        signingKeyId: root.signingKeyId,
        issuedAtMs: Date.now(),
        createIndex: index,
        modifyIndex: index,
      };
      slot.leaf = leaf;
      scheduleRenewal(service, slot, leaf);
      return leaf;
    })();
    slot.inflight = p;
    const clear = () => {
      if (slot.inflight === p) slot.inflight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /** spec §3.1: renew at a uniformly random point in [max(now, 60%), 90%] of the lifetime. */
  function scheduleRenewal(service: string, slot: LeafSlot, leaf: IssuedLeaf): void {
    const nb = leaf.validAfter.getTime();
    const lifetime = leaf.validBefore.getTime() - nb;
    const now = Date.now();
    const from = Math.max(now, nb + 0.6 * lifetime);
    const end = nb + 0.9 * lifetime;
    const at = from >= end ? now : from + Math.random() * (end - from);
    // Not "renew now when L < 10 min" as upstream does: with the dev agent's short TTLs that would
    // spin. Never renew sooner than a tenth of the lifetime after issuing.
    const delayMs = Math.max(at - now, 0.1 * lifetime);
    slot.renewAtMs = now + delayMs;
    setTimer(service, slot, delayMs);
  }

  function setTimer(service: string, slot: LeafSlot, delayMs: number, onlyIfRootChanged = false): void {
    clearTimeout(slot.timer);
    slot.timer = undefined;
    if (closed) return;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (onlyIfRootChanged && slot.leaf && slot.leaf.signingKeyId === active().signingKeyId) {
        return scheduleRenewal(service, slot, slot.leaf);
      }
      issue(service).catch((err: unknown) => {
        log.warn({ err, service }, "leaf renewal failed; retrying");
        setTimer(service, slot, RENEW_RETRY_MS);
      });
    }, delayMs);
    slot.timer.unref();
  }

  const first = await makeRoot({ keyType: "ec", keyBits: 256 });
  const rootIndex = feed.bump(ROOTS);
  roots.push({ ...first, active: true, createIndex: rootIndex, modifyIndex: rootIndex });

  const ca: CaInternals = {
    trustDomain,
    clusterId,
    ctx,
    roots,
    config,
    slots,
    activeRoot: () => {
      const r = active();
      return { id: r.id, signingKeyId: colonHex(r.signingKeyId), pem: r.pem };
    },
    rootPems: () => [...roots].sort((a, b) => Number(b.active) - Number(a.active)).map((r) => r.pem),
    cachedLeaf: (service) => slots.get(service)?.leaf,
    async leaf(service) {
      const slot = slotOf(service);
      const cached = slot.leaf;
      // spec §3: a non-blocking read revalidates against the active root and expiry
      if (cached && cached.signingKeyId === active().signingKeyId && cached.validBefore.getTime() > Date.now()) return cached;
      return issue(service);
    },
    async rotate(o = {}) {
      const next = await makeRoot({
        privateKeyPem: o.privateKeyPem,
        rootCertPem: o.rootCertPem,
        keyType: o.keyType ?? config.privateKeyType,
        keyBits: o.keyBits ?? config.privateKeyBits,
      });
      if (roots.some((r) => r.id === next.id)) return;
      const index = feed.bump(ROOTS);
      for (const r of roots) {
        if (r.active) {
          r.active = false;
          r.modifyIndex = index;
        }
      }
      roots.push({ ...next, active: true, createIndex: index, modifyIndex: index });
      log.info({ rootId: next.id }, "CA root rotated");
      // spec §3.2: every cached leaf is reissued after a random delay in [0, window), or at its
      // normal renewal point if that comes first: Consul's renewal timer keeps running beside the jitter.
      for (const [service, slot] of slots) {
        if (!slot.leaf) continue;
        const jitterMs = Math.random() * config.leafReissueWindowMs;
        setTimer(service, slot, Math.min(jitterMs, Math.max(0, slot.renewAtMs - Date.now())), true);
      }
    },
    close() {
      closed = true;
      for (const slot of slots.values()) {
        clearTimeout(slot.timer);
        slot.timer = undefined;
      }
    },
  };
  ctx.stopSignal.addEventListener("abort", () => ca.close(), { once: true });
  return ca;
}

// ---- JSON ---------------------------------------------------------------------------------

/** RFC 3339 UTC without fractional seconds. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

function rootsJson(ca: CaInternals): Record<string, unknown> {
  const act = ca.roots.find((r) => r.active)!;
  return {
    ActiveRootID: act.id,
    TrustDomain: ca.trustDomain,
    Roots: ca.roots.map((r) => ({
      ID: r.id,
      Name: "Consul CA Primary Cert",
      SerialNumber: r.serial,
      SigningKeyID: colonHex(r.signingKeyId),
      ExternalTrustDomain: ca.clusterId,
      NotBefore: rfc3339(r.notBefore),
      NotAfter: rfc3339(r.notAfter),
      RootCert: r.pem,
      IntermediateCerts: null,
      Active: r.active,
      PrivateKeyType: r.key.type,
      PrivateKeyBits: r.key.bits,
      CreateIndex: r.createIndex,
      ModifyIndex: r.modifyIndex,
    })),
  };
}

function leafJson(l: IssuedLeaf): Record<string, unknown> {
  return {
    SerialNumber: l.serialNumber,
    CertPEM: l.certPem,
    PrivateKeyPEM: l.privateKeyPem,
    Service: l.service,
    ServiceURI: l.serviceUri,
    ValidAfter: rfc3339(l.validAfter),
    ValidBefore: rfc3339(l.validBefore),
    CreateIndex: l.createIndex,
    ModifyIndex: l.modifyIndex,
  };
}

function configJson(c: CaConfig): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    LeafCertTTL: c.leafCertTtlText,
    IntermediateCertTTL: c.intermediateCertTtlText,
    RootCertTTL: c.rootCertTtlText,
    PrivateKeyType: c.privateKeyType,
    PrivateKeyBits: c.privateKeyBits,
    CSRMaxPerSecond: c.csrMaxPerSecond,
    CSRMaxConcurrent: c.csrMaxConcurrent,
    SkipValidate: c.skipValidate,
  };
  // the private key is never echoed (architecture: keys never leave in responses or logs)
  if (c.rootCertPem) cfg.RootCert = c.rootCertPem;
  return {
    Provider: "consul",
    Config: cfg,
    State: null,
    ForceWithoutCrossSigning: false,
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
  };
}

const CONFIG_SCHEMA: Schema = {
  Provider: { type: "string" },
  Config: { type: "map" },
  State: { type: "any" },
  ForceWithoutCrossSigning: { type: "bool" },
  CreateIndex: { type: "int" },
  ModifyIndex: { type: "int" },
};

/** A `Config` duration: Go duration text or integer nanoseconds. Returns [ms, text]. */
function configDuration(v: unknown, key: string): [number, string] {
  if (typeof v === "number" && Number.isFinite(v)) return [v / 1e6, formatGoDuration(v / 1e6)];
  if (typeof v === "string") {
    const ms = tryParseGoDuration(v);
    if (ms !== undefined) return [ms, v];
  }
  throw new HttpError(500, `error parsing Consul CA config: ${key}: time: invalid duration ${JSON.stringify(String(v))}`);
}

/** Applies `PUT /v1/connect/ca/configuration` (spec §8.4); rotates the root when key material changes. */
async function applyConfig(ca: CaInternals, body: Record<string, unknown>): Promise<void> {
  const provider = (body.Provider as string | undefined) ?? "consul";
  if (provider !== "consul") throw new HttpError(500, `the dev agent supports only the "consul" CA provider, not ${JSON.stringify(provider)}`);
  const raw = (body.Config as Record<string, unknown> | undefined) ?? {};
  const get = (k: string): unknown => {
    const hit = Object.keys(raw).find((x) => x.toLowerCase() === k.toLowerCase());
    return hit === undefined ? undefined : raw[hit];
  };
  const c = ca.config;
  const next = { ...c };
  if (get("LeafCertTTL") !== undefined) {
    const [ms, text] = configDuration(get("LeafCertTTL"), "LeafCertTTL");
    if (ms < MIN_LEAF_TTL_MS) throw new HttpError(500, `LeafCertTTL must be at least ${formatGoDuration(MIN_LEAF_TTL_MS)}`);
    if (ms >= MAX_LEAF_TTL_MS) throw new HttpError(500, `LeafCertTTL must be less than ${formatGoDuration(MAX_LEAF_TTL_MS)}`);
    next.leafCertTtlMs = ms;
    next.leafCertTtlText = text;
  }
  if (get("IntermediateCertTTL") !== undefined) next.intermediateCertTtlText = configDuration(get("IntermediateCertTTL"), "IntermediateCertTTL")[1];
  if (get("RootCertTTL") !== undefined) next.rootCertTtlText = configDuration(get("RootCertTTL"), "RootCertTTL")[1];
  const type = get("PrivateKeyType");
  const bits = get("PrivateKeyBits");
  if (type !== undefined) next.privateKeyType = String(type) as CaKeyType;
  if (bits !== undefined) next.privateKeyBits = Number(bits);
  if (next.privateKeyType !== "ec" && next.privateKeyType !== "rsa") {
    throw new HttpError(500, `private key type must be either 'ec' or 'rsa', got ${JSON.stringify(next.privateKeyType)}`);
  }
  if (!supportedKey(next.privateKeyType, next.privateKeyBits)) {
    throw new HttpError(500, `unsupported private key bits ${next.privateKeyBits} for key type ${next.privateKeyType}`);
  }
  if (get("CSRMaxPerSecond") !== undefined) next.csrMaxPerSecond = Number(get("CSRMaxPerSecond"));
  if (get("CSRMaxConcurrent") !== undefined) next.csrMaxConcurrent = Number(get("CSRMaxConcurrent"));
  if (get("SkipValidate") !== undefined) next.skipValidate = Boolean(get("SkipValidate"));
  const privateKeyPem = get("PrivateKey") as string | undefined;
  const rootCertPem = get("RootCert") as string | undefined;
  const keyChanged = next.privateKeyType !== c.privateKeyType || next.privateKeyBits !== c.privateKeyBits;
  const byo = (privateKeyPem !== undefined && privateKeyPem !== c.privateKeyPem) || (rootCertPem !== undefined && rootCertPem !== c.rootCertPem);
  // Consul rotates the root only for a new PrivateKey/RootCert or a key type/bits change.
  if (keyChanged || byo) {
    if (privateKeyPem) {
      try {
        importSigningKey(privateKeyPem);
      } catch (err) {
        throw new HttpError(500, `error parsing private key: ${(err as Error).message}`);
      }
    }
    // the new settings (key type, TTL) must be in place before the rotation schedules reissues
    const saved = { ...c };
    Object.assign(c, next);
    try {
      await ca.rotate({ privateKeyPem, rootCertPem, keyType: next.privateKeyType, keyBits: next.privateKeyBits });
    } catch (err) {
      Object.assign(c, saved);
      throw err;
    }
    if (privateKeyPem) {
      const r = ca.roots.find((x) => x.active)!;
      c.privateKeyType = r.key.type;
      c.privateKeyBits = r.key.bits;
    }
    c.privateKeyPem = privateKeyPem;
    c.rootCertPem = rootCertPem;
  } else Object.assign(c, next);
  c.modifyIndex = ca.ctx.feed.bump(CA_CONFIG);
}

// ---- routes -------------------------------------------------------------------------------

/** CA endpoints: agent and server roots, leaf certificates, CA configuration (spec §2, §3, §8.4). */
export function caRoutes(devCa: DevCa, ctx: DevAgentContext): Route[] {
  const ca = devCa as CaInternals;
  const readRoots = async (req: AgentRequest, agentCached: boolean): Promise<Reply> => {
    const { index, value } = await blockingRead(
      req,
      [ROOTS],
      () => ({ index: ctx.feed.indexOf(ROOTS), value: rootsJson(ca) }),
      agentCached ? { defaultWaitMs: AGENT_CACHE_WAIT_MS, jitter: false } : {},
    );
    if (!agentCached && /^(true|1|)$/.test(req.query.get("pem") ?? "x")) {
      return { text: ca.rootPems().join(""), index, meta: true };
    }
    return { json: value, index, meta: true, headers: agentCached ? { "X-Cache": "MISS" } : {} };
  };

  return [
    { path: "/v1/agent/connect/ca/roots", methods: ["GET"], handler: (req) => readRoots(req, true) },
    { path: "/v1/connect/ca/roots", methods: ["GET"], handler: (req) => readRoots(req, false) },
    {
      path: "/v1/agent/connect/ca/leaf/",
      methods: ["GET"],
      handler: async (req) => {
        const service = req.rest;
        if (service === "") throw new HttpError(400, "Missing service name");
        req.acl().require("service", "write", service);
        // spec §3: index = the cert's ModifyIndex; default wait 10 min, no jitter
        const opts = { defaultWaitMs: AGENT_CACHE_WAIT_MS, jitter: false };
        const { minIndex } = blockingParams(req, opts);
        const before = ca.cachedLeaf(service);
        let leaf = minIndex === 0 ? await ca.leaf(service) : (ca.cachedLeaf(service) ?? (await ca.leaf(service)));
        if (minIndex !== 0 && minIndex >= leaf.modifyIndex) {
          leaf = (
            await blockingRead(req, [`leaf:${service}`], () => {
              const l = ca.cachedLeaf(service) ?? leaf;
              return { index: l.modifyIndex, value: l };
            }, opts)
          ).value;
        }
        const hit = before !== undefined && leaf === before;
        const headers: Record<string, string> = hit
          ? { "X-Cache": "HIT", Age: String(Math.max(0, Math.floor((Date.now() - leaf.issuedAtMs) / 1000))) }
          : { "X-Cache": "MISS" };
        return { json: leafJson(leaf), index: leaf.modifyIndex, headers };
      },
    },
    {
      path: "/v1/connect/ca/configuration",
      methods: ["GET", "PUT"],
      handler: async (req) => {
        if (req.method === "GET") {
          req.acl().require("operator", "read");
          const { index } = await blockingRead(req, [CA_CONFIG], () => ({ index: ctx.feed.indexOf(CA_CONFIG), value: null }));
          return { json: configJson(ca.config), index, meta: true };
        }
        req.acl().require("operator", "write");
        const body = decodeStrict(req.body, CONFIG_SCHEMA);
        await applyConfig(ca, body);
        return {};
      },
    },
  ];
}
