// `-register`: the static-mode proxy registers itself, heartbeats a TTL check and deregisters on
// shutdown (spec §9.1). Unlike Consul's built-in proxy, which registers `<service>-proxy`, it registers
// as `<service>-sidecar-proxy`: the name a service identity grants `service:write` on besides the
// service's own (spec §11.3), so the least-privileged token a sidecar can hold may register it.
import {
  AgentError,
  deregisterService,
  listAgentServices,
  registerService,
  updateTtlCheck,
  type AgentClient,
} from "../agent/index.js";
import { canBind, ConfigError, delay } from "../net/index.js";
import type { Logger } from "../ops/index.js";

export const HEARTBEAT_INTERVAL_MS = 10_000; // spec §9.1: TTL/3
const TTL = "30s";
const DEREGISTER_ATTEMPTS = 3; // spec §9.1: up to 3 times, 500 ms apart
const DEREGISTER_PAUSE_MS = 500;

export interface Registration {
  readonly id: string;
  readonly checkId: string;
  /** Sets the TTL check critical ("draining") so discovery stops sending new callers. Never throws. */
  markDraining(): Promise<void>;
  /** Stops heartbeats and deregisters (3 attempts). Never throws; idempotent. */
  deregister(): Promise<void>;
  /** Stops heartbeats without deregistering. */
  stop(): void;
}

export interface RegistrationOptions {
  service: string;
  idSuffix: string;
  /** The bound public listener address. */
  listen: { host: string; port: number };
  heartbeatIntervalMs?: number;
}

/** The registration's name: `<service>-sidecar-proxy`, which a service identity for `<service>` may write (spec §11.3). */
export function registrationName(service: string): string {
  return `${service}-sidecar-proxy`;
}

/** The registration ID: the name, with `-<suffix>` when -register-id gives one (Consul's suffix, spec §9.1). */
export function registrationId(service: string, idSuffix: string): string {
  return idSuffix === "" ? registrationName(service) : `${registrationName(service)}-${idSuffix}`;
}

/**
 * The lowest port in [min, max] that no service registered with the agent has (as the agent assigns
 * sidecar ports, spec §6.2) and that `host` can bind now. A registration with `ownId` (this proxy's, left
 * from an earlier run) does not count: its port may be taken again, as a re-registered sidecar keeps its
 * port. Throws AgentError when the agent cannot be asked, ConfigError naming -sidecar-min-port when no
 * port is left.
 */
export async function pickRegistrationPort(
  agent: AgentClient,
  opts: { host: string; min: number; max: number; ownId: string },
  signal?: AbortSignal,
): Promise<{ port: number; assigned: number[] }> {
  const assigned = [...(await listAgentServices(agent, {}, signal)).values()]
    .filter((s) => s.id !== opts.ownId && s.port >= opts.min && s.port <= opts.max)
    .map((s) => s.port)
    .sort((a, b) => a - b);
  const taken = new Set(assigned);
  for (let port = opts.min; port <= opts.max; port++) {
    if (!taken.has(port) && (await canBind(opts.host, port))) return { port, assigned };
  }
  throw new ConfigError(
    "sidecar-min-port",
    `no port in ${opts.min}–${opts.max} is both free on ${opts.host} and unassigned by the agent; widen the range or pass -listen HOST:PORT`,
  );
}

/** Registers the proxy and starts heartbeats; rejects with AgentError when the first registration fails. */
export async function startRegistration(
  agent: AgentClient,
  opts: RegistrationOptions,
  deps: { log: Logger },
): Promise<Registration> {
  const id = registrationId(opts.service, opts.idSuffix);
  const checkId = `${id}-ttl`;
  const def = registrationBody(id, checkId, opts);
  const stop = new AbortController();
  await registerService(agent, def, stop.signal);
  deps.log.info({ id, checkId, address: opts.listen }, "registered the proxy with the agent");

  let beating = false;
  const beat = async (): Promise<void> => {
    if (beating || stop.signal.aborted) return;
    beating = true;
    try {
      await updateTtlCheck(agent, checkId, "passing", "", stop.signal);
    } catch (err) {
      if (stop.signal.aborted) return;
      if (err instanceof AgentError && err.code === "not_found") {
        // The agent lost us (restarted without state): register again.
        deps.log.warn({ id }, "the agent no longer knows the proxy registration; registering again");
        await registerService(agent, def, stop.signal).then(
          () => deps.log.info({ id }, "proxy re-registered"),
          (e: unknown) => deps.log.error({ err: e, id }, "re-registering the proxy failed; will retry"),
        );
      } else {
        deps.log.warn({ err, checkId }, "proxy heartbeat failed; will retry");
      }
    } finally {
      beating = false;
    }
  };
  const timer = setInterval(() => void beat(), opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();

  let deregistering: Promise<void> | undefined;
  const halt = (): void => {
    stop.abort();
    clearInterval(timer);
  };
  return {
    id,
    checkId,
    async markDraining() {
      halt();
      try {
        await updateTtlCheck(agent, checkId, "critical", "draining: the proxy is shutting down");
      } catch (err) {
        deps.log.warn({ err, checkId }, "could not mark the proxy check critical while draining");
      }
    },
    deregister: () =>
      (deregistering ??= (async () => {
        halt();
        for (let attempt = 1; attempt <= DEREGISTER_ATTEMPTS; attempt++) {
          try {
            await deregisterService(agent, id);
            deps.log.info({ id }, "deregistered the proxy");
            return;
          } catch (err) {
            if (err instanceof AgentError && err.code === "not_found") return;
            deps.log.warn({ err, id, attempt }, "deregistering the proxy failed");
            if (attempt < DEREGISTER_ATTEMPTS) await delay(DEREGISTER_PAUSE_MS);
          }
        }
      })()),
    stop: halt,
  };
}

// spec §9.1 registration body; an "any" listen address is left out (the agent refuses it, spec §6.1)
// so that the agent advertises its node address instead.
function registrationBody(id: string, checkId: string, opts: RegistrationOptions): Record<string, unknown> {
  const anyAddress = opts.listen.host === "0.0.0.0" || opts.listen.host === "::" || opts.listen.host === "";
  return {
    Kind: "connect-proxy",
    ID: id,
    Name: registrationName(opts.service),
    ...(anyAddress ? {} : { Address: opts.listen.host }),
    Port: opts.listen.port,
    Proxy: { DestinationServiceName: opts.service },
    Check: { CheckID: checkId, Name: "proxy heartbeat", TTL, Status: "passing" },
  };
}
