import { createHash, randomUUID } from "node:crypto";
import { formatGoDuration, tryParseGoDuration } from "../net/index.js";
import { ALLOW_ALL, ANONYMOUS_ACCESSOR_ID, TokenAuthz } from "./acl-authz.js";
import {
  dnsRules,
  GLOBAL_MANAGEMENT_RULES,
  GLOBAL_READ_ONLY_RULES,
  nodeIdentityRules,
  parseRules,
  RuleSet,
  serviceIdentityRules,
  type PolicyRules,
} from "./acl-rules.js";
import { blockingRead } from "./blocking.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict, type FieldSpec, type Schema } from "./decode.js";
import { HttpError } from "./http-error.js";
import type { AclAuthz, AgentRequest, Reply, Route } from "./router.js";

export { ALLOW_ALL, ANONYMOUS_ACCESSOR_ID, permissionDenied } from "./acl-authz.js";
export { parseRules, RuleSet } from "./acl-rules.js";

export const GLOBAL_MANAGEMENT_POLICY_ID = "00000000-0000-0000-0000-000000000001";
export const GLOBAL_READ_ONLY_POLICY_ID = "00000000-0000-0000-0000-000000000002";
const RESERVED_PREFIX = "00000000-0000-0000-0000-0000000000";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SERVICE_IDENTITY_RE = /^[a-z0-9]([a-z0-9\-_]*[a-z0-9])?$/;
const POLICY_NAME_RE = /^[A-Za-z0-9\-_]+\/?[A-Za-z0-9\-_]*$/;
const TOKENS = "acl-tokens";
const POLICIES = "acl-policies";
const MIN_TTL_MS = 60_000;
const MAX_TTL_MS = 24 * 3_600_000;
const NOT_FOUND = "token does not exist: ACL not found";

interface ServiceIdentity {
  serviceName: string;
  datacenters: string[];
}
interface NodeIdentity {
  nodeName: string;
  datacenter: string;
}
interface TemplatedPolicy {
  templateName: string;
  name: string | undefined;
  datacenters: string[];
}

interface TokenRecord {
  accessorId: string;
  secretId: string;
  description: string;
  policyIds: string[];
  serviceIdentities: ServiceIdentity[];
  nodeIdentities: NodeIdentity[];
  templatedPolicies: TemplatedPolicy[];
  local: boolean;
  expirationTime: Date | undefined;
  createTime: Date;
  hash: string;
  createIndex: number;
  modifyIndex: number;
}

interface PolicyRecord {
  id: string;
  name: string;
  description: string;
  rules: string;
  parsed: PolicyRules;
  datacenters: string[];
  hash: string;
  createIndex: number;
  modifyIndex: number;
}

/** The dev agent's ACL state: tokens, policies and the token → permissions resolver (spec §11). */
export interface AclStore {
  /**
   * The permissions of a request token. ACLs off: allow-all. "" means the anonymous token.
   * An unknown or expired secret throws 403 `token does not exist: ACL not found`.
   */
  resolve(token: string): AclAuthz;
  /** SecretID of the initial management token (cfg.initialManagementToken). */
  readonly managementToken: string;
  /** The index at which the initial management token bootstrapped the ACL system. */
  readonly bootstrapIndex: number;
}

interface Store extends AclStore {
  ctx: DevAgentContext;
  tokens: Map<string, TokenRecord>; // by AccessorID
  secrets: Map<string, string>; // SecretID → AccessorID
  policies: Map<string, PolicyRecord>; // by ID
  cache: Map<string, AclAuthz>; // SecretID → authz, cleared on every ACL write
  findToken(secret: string): TokenRecord | undefined;
  changed(table: string): number;
}

/** Creates the ACL store with the builtin policies, the initial management token and the anonymous token. */
export function createAclStore(ctx: DevAgentContext): AclStore {
  const { cfg, feed } = ctx;
  const tokens = new Map<string, TokenRecord>();
  const secrets = new Map<string, string>();
  const policies = new Map<string, PolicyRecord>();
  const cache = new Map<string, AclAuthz>();

  const builtinIndex = feed.bump(POLICIES);
  for (const [id, name, description, rules] of [
    [GLOBAL_MANAGEMENT_POLICY_ID, "global-management", "Builtin Policy that grants unlimited access", GLOBAL_MANAGEMENT_RULES],
    [GLOBAL_READ_ONLY_POLICY_ID, "builtin/global-read-only", "Builtin Policy that grants unlimited read-only access to all components", GLOBAL_READ_ONLY_RULES],
  ] as const) {
    policies.set(id, policyRecord({ id, name, description, rules, datacenters: [] }, builtinIndex, builtinIndex));
  }

  // spec §11.1: the leader writes the initial management token through the one-time bootstrap
  const bootstrapIndex = feed.bump(TOKENS);
  const now = new Date();
  const put = (t: Omit<TokenRecord, "hash">) => {
    const rec = { ...t, hash: tokenHash(t) };
    tokens.set(rec.accessorId, rec);
    secrets.set(rec.secretId, rec.accessorId);
  };
  put({
    accessorId: randomUUID(), secretId: cfg.initialManagementToken, description: "Initial Management Token",
    policyIds: [GLOBAL_MANAGEMENT_POLICY_ID], serviceIdentities: [], nodeIdentities: [], templatedPolicies: [],
    local: false, expirationTime: undefined, createTime: now, createIndex: bootstrapIndex, modifyIndex: bootstrapIndex,
  });
  put({
    accessorId: ANONYMOUS_ACCESSOR_ID, secretId: "anonymous", description: "Anonymous Token",
    policyIds: [], serviceIdentities: [], nodeIdentities: [], templatedPolicies: [],
    local: false, expirationTime: undefined, createTime: now, createIndex: bootstrapIndex, modifyIndex: bootstrapIndex,
  });

  const store: Store = {
    ctx,
    tokens,
    secrets,
    policies,
    cache,
    managementToken: cfg.initialManagementToken,
    bootstrapIndex,
    findToken(secret) {
      const accessor = secrets.get(secret);
      const t = accessor === undefined ? undefined : tokens.get(accessor);
      if (t?.expirationTime && t.expirationTime.getTime() <= Date.now()) return undefined;
      return t;
    },
    changed(table) {
      cache.clear();
      return feed.bump(table);
    },
    resolve(token) {
      if (!cfg.aclsEnabled) return ALLOW_ALL;
      const secret = token === "" ? "anonymous" : token;
      const hit = cache.get(secret);
      if (hit) return hit;
      const t = store.findToken(secret);
      if (!t) throw new HttpError(403, NOT_FOUND);
      const authz = new TokenAuthz(
        t.accessorId,
        t.policyIds.includes(GLOBAL_MANAGEMENT_POLICY_ID),
        new RuleSet(tokenRules(store, t)),
        cfg.aclDefaultPolicy === "allow",
      );
      // expiring tokens are not cached, so expiry is noticed on the next request
      if (!t.expirationTime) cache.set(secret, authz);
      return authz;
    },
  };
  return store;
}

/** Every rule source of a token that applies in this datacenter (spec §11.3, §11.4 step 1). */
function tokenRules(store: Store, t: TokenRecord): PolicyRules[] {
  const dc = store.ctx.cfg.datacenter;
  const inDc = (dcs: readonly string[]) => dcs.length === 0 || dcs.includes(dc);
  const out: PolicyRules[] = [];
  for (const id of t.policyIds) {
    const p = store.policies.get(id);
    if (p && inDc(p.datacenters)) out.push(p.parsed);
  }
  for (const si of t.serviceIdentities) if (inDc(si.datacenters)) out.push(serviceIdentityRules(si.serviceName));
  for (const ni of t.nodeIdentities) if (ni.datacenter === dc) out.push(nodeIdentityRules(ni.nodeName));
  for (const tp of t.templatedPolicies) {
    if (!inDc(tp.datacenters)) continue;
    if (tp.templateName === "builtin/service") out.push(serviceIdentityRules(tp.name ?? ""));
    else if (tp.templateName === "builtin/node") out.push(nodeIdentityRules(tp.name ?? ""));
    else if (tp.templateName === "builtin/dns") out.push(dnsRules());
  }
  return out;
}

/**
 * Keeps the items the request's token may see. Adds `X-Consul-Results-Filtered-By-ACLs: true`
 * when something was dropped and the request carried a token (spec §1.3, §11.1).
 */
export function filterByAcl<T>(
  req: AgentRequest,
  items: Iterable<T>,
  keep: (authz: AclAuthz, item: T) => boolean,
): { items: T[]; headers: Record<string, string> } {
  const authz = req.acl();
  const out: T[] = [];
  let dropped = false;
  for (const item of items) {
    if (keep(authz, item)) out.push(item);
    else dropped = true;
  }
  return { items: out, headers: dropped && req.token !== "" ? { "X-Consul-Results-Filtered-By-ACLs": "true" } : {} };
}

// ---- JSON shapes --------------------------------------------------------------------------

function tokenHash(t: Omit<TokenRecord, "hash" | "createIndex" | "modifyIndex">): string {
  const h = createHash("sha256");
  h.update(JSON.stringify([t.description, t.policyIds, t.serviceIdentities, t.nodeIdentities, t.templatedPolicies, t.local]));
  return h.digest("base64");
}

function policyRecord(
  p: { id: string; name: string; description: string; rules: string; datacenters: string[] },
  createIndex: number,
  modifyIndex: number,
): PolicyRecord {
  const hash = createHash("sha256").update(JSON.stringify([p.name, p.description, p.rules, p.datacenters])).digest("base64");
  return { ...p, parsed: parseRules(p.rules), hash, createIndex, modifyIndex };
}

/** Go's RFC3339Nano for a JS date (millisecond precision, trailing zeros trimmed). */
function goTime(d: Date): string {
  return d.toISOString().replace(/\.?0+Z$/, "Z");
}

function tokenJson(store: Store, t: TokenRecord, showSecret: boolean, stub = false): Record<string, unknown> {
  const links = t.policyIds.flatMap((id) => {
    const p = store.policies.get(id);
    return p ? [{ ID: p.id, Name: p.name }] : [];
  });
  const out: Record<string, unknown> = {
    AccessorID: t.accessorId,
    SecretID: showSecret ? t.secretId : "<hidden>",
    Description: t.description,
  };
  if (links.length) out.Policies = links;
  if (t.serviceIdentities.length) {
    out.ServiceIdentities = t.serviceIdentities.map((s) =>
      s.datacenters.length ? { ServiceName: s.serviceName, Datacenters: s.datacenters } : { ServiceName: s.serviceName },
    );
  }
  if (t.nodeIdentities.length) out.NodeIdentities = t.nodeIdentities.map((n) => ({ NodeName: n.nodeName, Datacenter: n.datacenter }));
  if (t.templatedPolicies.length) {
    out.TemplatedPolicies = t.templatedPolicies.map((tp) => ({
      TemplateName: tp.templateName,
      ...(tp.name !== undefined ? { TemplateVariables: { name: tp.name } } : {}),
      ...(tp.datacenters.length ? { Datacenters: tp.datacenters } : {}),
    }));
  }
  out.Local = t.local;
  if (t.expirationTime) out.ExpirationTime = goTime(t.expirationTime);
  out.CreateTime = goTime(t.createTime);
  out.Hash = t.hash;
  out.CreateIndex = t.createIndex;
  out.ModifyIndex = t.modifyIndex;
  if (stub) out.Legacy = false;
  return out;
}

function policyJson(p: PolicyRecord, stub = false): Record<string, unknown> {
  return {
    ID: p.id,
    Name: p.name,
    Description: p.description,
    ...(stub ? {} : { Rules: p.rules }),
    ...(p.datacenters.length ? { Datacenters: p.datacenters } : {}),
    Hash: p.hash,
    CreateIndex: p.createIndex,
    ModifyIndex: p.modifyIndex,
  };
}

// ---- request bodies -----------------------------------------------------------------------

const STRING: FieldSpec = { type: "string" };
const LINK: FieldSpec = { fields: { ID: STRING, Name: STRING } };
const TOKEN_SCHEMA: Schema = {
  AccessorID: { type: "string", aliases: ["accessor_id"] },
  SecretID: { type: "string", aliases: ["secret_id"] },
  Description: STRING,
  Policies: { items: LINK },
  Roles: { items: LINK },
  ServiceIdentities: {
    aliases: ["service_identities"],
    items: { fields: { ServiceName: { type: "string", aliases: ["service_name"] }, Datacenters: { items: STRING } } },
  },
  NodeIdentities: {
    aliases: ["node_identities"],
    items: { fields: { NodeName: { type: "string", aliases: ["node_name"] }, Datacenter: STRING } },
  },
  TemplatedPolicies: {
    aliases: ["templated_policies"],
    items: {
      fields: {
        TemplateName: { type: "string", aliases: ["template_name"] },
        TemplateID: STRING,
        TemplateVariables: { aliases: ["template_variables"], fields: { Name: STRING } },
        Datacenters: { items: STRING },
      },
    },
  },
  Local: { type: "bool" },
  AuthMethod: { type: "string", aliases: ["auth_method"] },
  ExpirationTime: { type: "string", aliases: ["expiration_time"] },
  ExpirationTTL: { type: "any", aliases: ["expiration_ttl"] },
  CreateTime: { type: "string", aliases: ["create_time"] },
  Hash: { type: "any" },
  Legacy: { type: "bool" },
  CreateIndex: { type: "int" },
  ModifyIndex: { type: "int" },
};
const POLICY_SCHEMA: Schema = {
  ID: STRING,
  Name: STRING,
  Description: STRING,
  Rules: STRING,
  Datacenters: { items: STRING },
  Hash: { type: "any" },
  CreateIndex: { type: "int" },
  ModifyIndex: { type: "int" },
};

const fail = (msg: string) => new HttpError(500, msg);

type Links = Array<{ ID?: string; Name?: string }> | undefined;

function resolvePolicyLinks(store: Store, links: Links): string[] {
  const ids: string[] = [];
  for (const l of links ?? []) {
    let id: string | undefined;
    if (l.ID) {
      if (!store.policies.has(l.ID)) throw fail(`No such ACL policy with ID "${l.ID}"`);
      id = l.ID;
    } else if (l.Name) {
      id = [...store.policies.values()].find((p) => p.name === l.Name)?.id;
      if (!id) throw fail(`No such ACL policy with name "${l.Name}"`);
    } else continue;
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

function checkRoleLinks(links: Links): void {
  for (const l of links ?? []) {
    if (l.ID) throw fail(`No such ACL role with ID "${l.ID}"`);
    if (l.Name) throw fail(`No such ACL role with name "${l.Name}"`);
  }
}

function serviceIdentities(raw: unknown, local: boolean): ServiceIdentity[] {
  const out: ServiceIdentity[] = [];
  for (const s of (raw as Array<{ ServiceName?: string; Datacenters?: string[] }> | undefined) ?? []) {
    const name = s.ServiceName ?? "";
    if (name === "") throw fail("Service identity is missing the service name field on this token");
    if (name.length > 256 || !SERVICE_IDENTITY_RE.test(name)) {
      throw fail(`Service identity "${name}" has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed`);
    }
    const dcs = s.Datacenters ?? [];
    if (local && dcs.length) throw fail(`Service identity "${name}" cannot specify a list of datacenters on a local token`);
    const prev = out.find((x) => x.serviceName === name);
    if (prev) {
      // spec §11.2: entries with the same name merge; an empty list means all datacenters
      prev.datacenters = prev.datacenters.length === 0 || dcs.length === 0 ? [] : [...new Set([...prev.datacenters, ...dcs])];
    } else out.push({ serviceName: name, datacenters: [...dcs] });
  }
  return out;
}

function nodeIdentities(raw: unknown): NodeIdentity[] {
  const out: NodeIdentity[] = [];
  for (const n of (raw as Array<{ NodeName?: string; Datacenter?: string }> | undefined) ?? []) {
    const name = n.NodeName ?? "";
    if (name === "") throw fail("Node identity is missing the node name field on this token");
    if (!n.Datacenter) throw fail(`Node identity "${name}" is missing the datacenter field on this token`);
    if (!/^[A-Za-z0-9\-_]+$/.test(name)) {
      throw fail(`Node identity "${name}" has an invalid name. Only alphanumeric characters, '-' and '_' are allowed`);
    }
    if (!out.some((x) => x.nodeName === name && x.datacenter === n.Datacenter)) out.push({ nodeName: name, datacenter: n.Datacenter });
  }
  return out;
}

function templatedPolicies(raw: unknown): TemplatedPolicy[] {
  const out: TemplatedPolicy[] = [];
  type Raw = { TemplateName?: string; TemplateVariables?: { Name?: string }; Datacenters?: string[] };
  for (const tp of (raw as Raw[] | undefined) ?? []) {
    const tname = tp.TemplateName ?? "";
    const name = tp.TemplateVariables?.Name;
    if (tname === "builtin/service" || tname === "builtin/node") {
      if (!name) throw fail(`validation error for templated policy "${tname}": name is required`);
      if (tname === "builtin/service" && !SERVICE_IDENTITY_RE.test(name)) {
        throw fail(
          `validation error for templated policy "${tname}": service identity "${name}" has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed`,
        );
      }
      out.push({ templateName: tname, name, datacenters: tp.Datacenters ?? [] });
    } else if (tname === "builtin/dns") {
      out.push({ templateName: tname, name: undefined, datacenters: tp.Datacenters ?? [] });
    } else throw fail(`no such ACL templated policy with Name "${tname}"`);
  }
  return out;
}

/** ExpirationTTL: a Go duration string or integer nanoseconds. */
function expirationTtlMs(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw === "number" && Number.isFinite(raw)) return raw / 1e6;
  if (typeof raw === "string") {
    const ms = tryParseGoDuration(raw);
    if (ms !== undefined) return ms;
  }
  throw new HttpError(400, `Token decoding failed: time: invalid duration ${JSON.stringify(String(raw))}`);
}

function checkIdField(store: Store, field: "AccessorID" | "SecretID", value: string): void {
  if (!UUID_RE.test(value)) throw fail(`Invalid Token: ${field} - not a valid UUID`);
  if (value.startsWith(RESERVED_PREFIX)) {
    throw fail(`Invalid Token: ${field} - UUIDs with the prefix "${RESERVED_PREFIX}" are reserved`);
  }
  const used = field === "AccessorID" ? store.tokens.has(value) : store.secrets.has(value);
  if (used) throw fail(`Invalid Token: ${field} is already in use`);
}

function createToken(store: Store, body: Record<string, unknown>): TokenRecord {
  if (body.AuthMethod) throw fail("AuthMethod field is disallowed outside of login");
  const accessorId = (body.AccessorID as string | undefined) || undefined;
  const secretId = (body.SecretID as string | undefined) || undefined;
  if (accessorId !== undefined) checkIdField(store, "AccessorID", accessorId);
  if (secretId !== undefined) checkIdField(store, "SecretID", secretId);
  const local = (body.Local as boolean | undefined) ?? false;
  const policyIds = resolvePolicyLinks(store, body.Policies as Links);
  checkRoleLinks(body.Roles as Links);
  const sis = serviceIdentities(body.ServiceIdentities, local);
  const nis = nodeIdentities(body.NodeIdentities);
  const tps = templatedPolicies(body.TemplatedPolicies);
  const createTime = new Date();
  const ttlMs = expirationTtlMs(body.ExpirationTTL);
  let expirationTime: Date | undefined;
  if (ttlMs !== undefined && ttlMs !== 0) {
    if (body.ExpirationTime) throw fail("Token Expiration TTL and Expiration Time cannot both be set");
    if (ttlMs < 0) throw fail(`Token Expiration TTL '${formatGoDuration(ttlMs)}' should be > 0`);
    expirationTime = new Date(createTime.getTime() + ttlMs);
  } else if (body.ExpirationTime) {
    const t = Date.parse(body.ExpirationTime as string);
    if (Number.isNaN(t)) throw new HttpError(400, `Token decoding failed: parsing time ${JSON.stringify(body.ExpirationTime)}`);
    expirationTime = new Date(t);
  }
  if (expirationTime) {
    const ahead = expirationTime.getTime() - createTime.getTime();
    if (ahead > MAX_TTL_MS) {
      throw fail(`ExpirationTime cannot be more than ${formatGoDuration(MAX_TTL_MS)} in the future (was ${formatGoDuration(ahead)})`);
    }
    if (ahead < MIN_TTL_MS) {
      throw fail(`ExpirationTime cannot be less than ${formatGoDuration(MIN_TTL_MS)} in the future (was ${formatGoDuration(ahead)})`);
    }
  }
  const index = store.changed(TOKENS);
  const t = {
    accessorId: accessorId ?? randomUUID(),
    secretId: secretId ?? randomUUID(),
    description: (body.Description as string | undefined) ?? "",
    policyIds,
    serviceIdentities: sis,
    nodeIdentities: nis,
    templatedPolicies: tps,
    local,
    expirationTime,
    createTime,
    createIndex: index,
    modifyIndex: index,
  };
  const rec = { ...t, hash: tokenHash(t) };
  store.tokens.set(rec.accessorId, rec);
  store.secrets.set(rec.secretId, rec.accessorId);
  return rec;
}

function updateToken(store: Store, accessorId: string, body: Record<string, unknown>): TokenRecord {
  const bodyAccessor = body.AccessorID as string | undefined;
  if (bodyAccessor && bodyAccessor !== accessorId) throw new HttpError(400, "Token Accessor ID in URL and payload do not match");
  if (body.AuthMethod) throw fail("AuthMethod field is disallowed outside of login");
  const old = store.tokens.get(accessorId);
  if (!old || (old.expirationTime && old.expirationTime.getTime() <= Date.now())) {
    throw fail(`Cannot find token "${accessorId}"`);
  }
  if (body.SecretID && body.SecretID !== old.secretId) throw fail("Changing a token's SecretID is not permitted");
  if (body.Local !== undefined && body.Local !== old.local) throw fail(`Cannot toggle local mode of ${accessorId}`);
  const ttl = expirationTtlMs(body.ExpirationTTL);
  const newExp = body.ExpirationTime ? Date.parse(body.ExpirationTime as string) : undefined;
  if ((ttl !== undefined && ttl !== 0) || (newExp !== undefined && newExp !== old.expirationTime?.getTime())) {
    throw fail(`Cannot change expiration time of ${accessorId}`);
  }
  const policyIds = resolvePolicyLinks(store, body.Policies as Links);
  checkRoleLinks(body.Roles as Links);
  const t = {
    ...old,
    description: (body.Description as string | undefined) ?? "",
    policyIds,
    serviceIdentities: serviceIdentities(body.ServiceIdentities, old.local),
    nodeIdentities: nodeIdentities(body.NodeIdentities),
    templatedPolicies: templatedPolicies(body.TemplatedPolicies),
    modifyIndex: store.changed(TOKENS),
  };
  const rec = { ...t, hash: tokenHash(t) };
  store.tokens.set(accessorId, rec);
  return rec;
}

function checkPolicyName(store: Store, name: string, selfId: string | undefined): void {
  if (name === "") throw fail("Invalid Policy: no Name is set");
  if (name.length > 128) throw fail("Invalid Policy: invalid Name. Length must be greater than 0 and less than 128");
  if (name.startsWith("/") || name.startsWith("builtin/")) {
    if (selfId !== GLOBAL_READ_ONLY_POLICY_ID) throw fail("Invalid Policy: invalid Name. Names cannot be prefixed with '/' or 'builtin/'");
  } else if (!POLICY_NAME_RE.test(name)) {
    throw fail("Invalid Policy: invalid Name. Only alphanumeric characters, a single '/', '-' and '_' are allowed");
  }
  for (const p of store.policies.values()) {
    if (p.name === name && p.id !== selfId) throw fail(`Invalid Policy: A Policy with Name "${name}" already exists`);
  }
}

function parsePolicyRules(text: string): void {
  try {
    parseRules(text);
  } catch (err) {
    throw fail((err as Error).message);
  }
}

// ---- routes -------------------------------------------------------------------------------

/** The `/v1/acl/*` endpoints (spec §11). With ACLs off each answers 401 `ACL support disabled` after the 405 check. */
export function aclRoutes(aclStore: AclStore, ctx: DevAgentContext): Route[] {
  const store = aclStore as Store;
  const gate =
    (handler: (req: AgentRequest) => Reply | Promise<Reply>) =>
    (req: AgentRequest): Reply | Promise<Reply> => {
      if (!ctx.cfg.aclsEnabled) throw new HttpError(401, "ACL support disabled");
      return handler(req);
    };
  const route = (path: string, methods: string[], handler: (req: AgentRequest) => Reply | Promise<Reply>): Route => ({
    path,
    methods,
    handler: gate(handler),
  });
  const canSeeSecrets = (req: AgentRequest) => req.acl().allowed("acl", "write");
  const tableRead = <T>(req: AgentRequest, table: string, value: () => T) =>
    blockingRead(req, [table], () => ({ index: ctx.feed.indexOf(table), value: value() }));

  return [
    route("/v1/acl/bootstrap", ["PUT"], () => {
      throw new HttpError(403, `Permission denied: ACL bootstrap no longer allowed (reset index: ${store.bootstrapIndex})`);
    }),

    route("/v1/acl/token", ["PUT"], (req) => {
      req.acl().require("acl", "write");
      const body = decodeStrict(req.body, TOKEN_SCHEMA, "", "Token decoding failed");
      return { json: tokenJson(store, createToken(store, body), true) };
    }),

    route("/v1/acl/token/self", ["GET"], (req) => {
      // spec §11.2: no token looks up "" and is not found; it does not fall back to anonymous
      const t = req.token === "" ? undefined : store.findToken(req.token);
      if (!t) throw new HttpError(403, NOT_FOUND);
      return { json: tokenJson(store, t, true), index: t.modifyIndex, meta: true };
    }),

    route("/v1/acl/token/", ["GET", "PUT", "DELETE"], async (req) => {
      const [id = "", action, ...extra] = req.rest.split("/");
      if (id === "" && req.method !== "PUT") throw new HttpError(400, "Missing token AccessorID");
      if (extra.length || (action !== undefined && (action !== "clone" || req.method !== "PUT"))) {
        throw new HttpError(404, "Invalid URL path: not a recognized HTTP API endpoint\n");
      }
      if (req.method === "GET") {
        const authz = req.acl();
        authz.require("acl", "read");
        const { index, value: t } = await tableRead(req, TOKENS, () => {
          const t = store.tokens.get(id);
          return t && !(t.expirationTime && t.expirationTime.getTime() <= Date.now()) ? t : undefined;
        });
        if (!t) throw new HttpError(404, "Requested token does not exist: ACL not found");
        const json = tokenJson(store, t, authz.allowed("acl", "write"));
        if (req.query.has("expanded")) Object.assign(json, expandedFields(store, t));
        return { json, index, meta: true };
      }
      if (req.method === "DELETE") {
        // spec §11.2 quirk: any "ACL not found" while deleting becomes the delete 404
        let caller: AclAuthz;
        try {
          caller = req.acl();
        } catch (err) {
          if (err instanceof HttpError && err.message.includes("ACL not found")) throw new HttpError(404, "Cannot find token to delete");
          throw err;
        }
        caller.require("acl", "write");
        if (!UUID_RE.test(id)) throw fail("Accessor ID is missing or an invalid UUID");
        if (id === ANONYMOUS_ACCESSOR_ID) throw fail("Delete operation not permitted on the anonymous token");
        const t = store.tokens.get(id);
        if (!t) throw new HttpError(404, "Cannot find token to delete");
        if (t.secretId === (req.token || "anonymous")) throw fail("Deletion of the request's authorization token is not permitted");
        store.tokens.delete(id);
        store.secrets.delete(t.secretId);
        store.changed(TOKENS);
        return { json: true };
      }
      req.acl().require("acl", "write");
      if (id === "") throw new HttpError(400, "Missing token AccessorID");
      if (action === "clone") {
        const body = decodeStrict(req.body, { Description: STRING }, "", "Token decoding failed");
        const src = store.tokens.get(id);
        if (!src) throw fail(`Cannot find token "${id}"`);
        if (id === ANONYMOUS_ACCESSOR_ID) throw fail("Cannot clone the anonymous token");
        const clone = createToken(store, {
          Description: (body.Description as string | undefined) || src.description,
          Policies: src.policyIds.map((ID) => ({ ID })),
          ServiceIdentities: src.serviceIdentities.map((s) => ({ ServiceName: s.serviceName, Datacenters: s.datacenters })),
          NodeIdentities: src.nodeIdentities.map((n) => ({ NodeName: n.nodeName, Datacenter: n.datacenter })),
          Local: src.local,
        });
        return { json: tokenJson(store, clone, true) };
      }
      const body = decodeStrict(req.body, TOKEN_SCHEMA, "", "Token decoding failed");
      return { json: tokenJson(store, updateToken(store, id, body), true) };
    }),

    route("/v1/acl/tokens", ["GET"], async (req) => {
      const authz = req.acl();
      authz.require("acl", "read");
      const show = canSeeSecrets(req);
      const policy = req.query.get("policy");
      const { index, value } = await tableRead(req, TOKENS, () =>
        [...store.tokens.values()]
          .filter((t) => !(t.expirationTime && t.expirationTime.getTime() <= Date.now()))
          .filter((t) => !policy || t.policyIds.includes(policy))
          .sort((a, b) => a.createIndex - b.createIndex || a.accessorId.localeCompare(b.accessorId))
          .map((t) => tokenJson(store, t, show, true)),
      );
      return { json: value, index, meta: true };
    }),

    route("/v1/acl/policy", ["PUT"], (req) => {
      req.acl().require("acl", "write");
      const body = decodeStrict(req.body, POLICY_SCHEMA, "", "Policy decoding failed");
      if (body.ID) throw new HttpError(400, "Cannot specify the ID when creating a new policy");
      const name = (body.Name as string | undefined) ?? "";
      checkPolicyName(store, name, undefined);
      const rules = (body.Rules as string | undefined) ?? "";
      parsePolicyRules(rules);
      const index = store.changed(POLICIES);
      const p = policyRecord(
        { id: randomUUID(), name, description: (body.Description as string | undefined) ?? "", rules, datacenters: (body.Datacenters as string[] | undefined) ?? [] },
        index,
        index,
      );
      store.policies.set(p.id, p);
      return { json: policyJson(p) };
    }),

    route("/v1/acl/policy/name/", ["GET"], async (req) => {
      req.acl().require("acl", "read");
      if (req.rest === "") throw new HttpError(400, "Missing policy Name");
      const { index, value: p } = await tableRead(req, POLICIES, () => [...store.policies.values()].find((p) => p.name === req.rest));
      if (!p) throw new HttpError(404, "Requested policy does not exist: ACL not found");
      return { json: policyJson(p), index, meta: true };
    }),

    route("/v1/acl/policy/", ["GET", "PUT", "DELETE"], async (req) => {
      const id = req.rest;
      if (id === "" && req.method !== "PUT") throw new HttpError(400, "Missing policy ID");
      if (req.method === "GET") {
        req.acl().require("acl", "read");
        const { index, value: p } = await tableRead(req, POLICIES, () => store.policies.get(id));
        if (!p) throw new HttpError(404, "Requested policy does not exist: ACL not found");
        return { json: policyJson(p), index, meta: true };
      }
      req.acl().require("acl", "write");
      if (req.method === "DELETE") {
        const p = store.policies.get(id);
        if (!p) throw new HttpError(404, "Cannot find policy to delete");
        if (id === GLOBAL_MANAGEMENT_POLICY_ID || id === GLOBAL_READ_ONLY_POLICY_ID) {
          throw fail(`Delete operation not permitted on the builtin ${p.name} policy`);
        }
        store.policies.delete(id);
        for (const t of store.tokens.values()) t.policyIds = t.policyIds.filter((x) => x !== id);
        store.changed(POLICIES);
        return { json: true };
      }
      if (id === "") throw new HttpError(400, "Missing policy ID");
      const body = decodeStrict(req.body, POLICY_SCHEMA, "", "Policy decoding failed");
      if (body.ID && body.ID !== id) throw new HttpError(400, "Policy ID in URL and payload do not match");
      const old = store.policies.get(id);
      if (!old) throw fail(`Invalid Policy: A Policy with ID "${id}" does not exist`);
      const name = (body.Name as string | undefined) ?? "";
      checkPolicyName(store, name, id);
      const rules = (body.Rules as string | undefined) ?? "";
      const datacenters = (body.Datacenters as string[] | undefined) ?? [];
      if (id === GLOBAL_MANAGEMENT_POLICY_ID || id === GLOBAL_READ_ONLY_POLICY_ID) {
        if (rules !== old.rules) throw fail(`Changing the Rules for the builtin ${old.name} policy is not permitted`);
        if (datacenters.length) throw fail(`Changing the Datacenters of the builtin ${old.name} policy is not permitted`);
      }
      parsePolicyRules(rules);
      const p = policyRecord(
        { id, name, description: (body.Description as string | undefined) ?? "", rules, datacenters },
        old.createIndex,
        store.changed(POLICIES),
      );
      store.policies.set(id, p);
      return { json: policyJson(p) };
    }),

    route("/v1/acl/policies", ["GET"], async (req) => {
      req.acl().require("acl", "read");
      const { index, value } = await tableRead(req, POLICIES, () =>
        [...store.policies.values()].sort((a, b) => a.createIndex - b.createIndex || a.id.localeCompare(b.id)).map((p) => policyJson(p, true)),
      );
      return { json: value, index, meta: true };
    }),

    // Roles, auth methods and login are not implemented; they answer as an empty cluster would.
    route("/v1/acl/roles", ["GET"], (req) => {
      req.acl().require("acl", "read");
      return { json: [], index: ctx.feed.indexOf("acl-roles"), meta: true };
    }),
    route("/v1/acl/role", ["PUT"], (req) => {
      req.acl().require("acl", "write");
      throw fail("ACL roles are not supported by the dev agent");
    }),
    route("/v1/acl/role/", ["GET", "PUT", "DELETE"], (req) => {
      req.acl().require("acl", req.method === "GET" ? "read" : "write");
      if (req.method === "DELETE") throw new HttpError(404, "Cannot find role to delete");
      if (req.method === "PUT") throw fail("ACL roles are not supported by the dev agent");
      throw new HttpError(404, "Requested role does not exist: ACL not found");
    }),
    route("/v1/acl/replication", ["GET"], () => ({
      json: {
        Enabled: false, Running: false, SourceDatacenter: ctx.cfg.datacenter, ReplicationType: "",
        ReplicatedIndex: 0, ReplicatedRoleIndex: 0, ReplicatedTokenIndex: 0,
        LastSuccess: "0001-01-01T00:00:00Z", LastError: "0001-01-01T00:00:00Z", LastErrorMessage: "",
      },
    })),
    // spec §11.6: every other /v1/acl/* path is 401 with ACLs off, 404 with them on
    route("/v1/acl/", ["GET", "PUT", "POST", "DELETE"], () => {
      throw new HttpError(404, "Invalid URL path: not a recognized HTTP API endpoint\n");
    }),
  ];
}

function expandedFields(store: Store, t: TokenRecord): Record<string, unknown> {
  return {
    ExpandedPolicies: t.policyIds.flatMap((id) => {
      const p = store.policies.get(id);
      return p ? [policyJson(p)] : [];
    }),
    ExpandedRoles: [],
    NamespaceDefaultPolicyIDs: null,
    NamespaceDefaultRoleIDs: null,
    AgentACLDefaultPolicy: store.ctx.cfg.aclDefaultPolicy,
    AgentACLDownPolicy: "extend-cache",
    ResolvedByAgent: store.ctx.cfg.nodeName,
  };
}
