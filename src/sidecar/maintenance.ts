// In agent mode the sidecar's own catalog health goes critical the moment it starts draining, through
// the agent's service maintenance mode: a critical check on the proxy service, so discovery stops
// choosing this instance at once instead of when the agent's TCP check next fails (10 s). The reason
// marks the maintenance as ours: a sidecar that starts again takes back only its own, never an
// operator's `consul maint`.
import { AgentError, serviceMaintenanceReason, setServiceMaintenance, type AgentClient } from "../agent/index.js";
import type { Logger } from "../ops/index.js";

export const DRAINING_REASON = "connect-sidecar: draining for shutdown";

/** Puts the proxy service in maintenance for the drain. Never throws: a failure is logged, the drain goes on. */
export async function enterDrainingMaintenance(agent: AgentClient, proxyId: string, log: Logger): Promise<void> {
  try {
    await setServiceMaintenance(agent, proxyId, DRAINING_REASON);
    log.info({ proxyId }, "marked the proxy service critical (maintenance mode) for the drain");
  } catch (err) {
    log.warn({ proxyId, error: err instanceof Error ? err.message : String(err) }, "could not put the proxy service in maintenance mode; peers stop choosing it when its check fails");
  }
}

/** Takes the proxy service out of a maintenance a previous run of this sidecar left. Never throws. */
export async function leaveOwnMaintenance(agent: AgentClient, proxyId: string, log: Logger): Promise<void> {
  try {
    const reason = await serviceMaintenanceReason(agent, proxyId);
    if (reason === undefined) return;
    if (reason !== DRAINING_REASON) {
      log.warn({ proxyId, reason }, "the proxy service is in maintenance mode set by someone else; leaving it as it is");
      return;
    }
    await setServiceMaintenance(agent, proxyId, undefined);
    log.info({ proxyId }, "took the proxy service out of the maintenance mode an earlier drain left");
  } catch (err) {
    if (err instanceof AgentError && err.code === "not_found") return;
    log.warn({ proxyId, error: err instanceof Error ? err.message : String(err) }, "could not check the proxy service's maintenance mode");
  }
}
