// The production checklist (`connect-sidecar doctor`) run by the sidecar on itself: once when it is
// ready, then on a timer, so /status shows drift and every FAIL is logged as a WARN when first seen.
// The doctor is imported by the first run, after ready: it does not delay start-up, and with
// -checklist-interval 0 it is never loaded. Resident after its first run it costs ~1.5 MB of RSS; a
// `connect-sidecar doctor -json` child per run would save that but cost a whole Node process each
// time (0.46 s of CPU, 100 MB peak RSS, measured), at start-up and every 10 minutes.
import type { AgentClient, AgentConfig } from "../agent/index.js";
import type { DoctorIdentity, DoctorReport, Verdict } from "../doctor/index.js";
import type { Logger } from "../ops/index.js";

export interface ChecklistStatus {
  checkedAt: string;
  counts: Record<Verdict, number>;
  checks: Array<{ id: string; verdict: Verdict; seen: string; fix?: string }>;
}

export interface Checklist {
  /** The last completed run, for /status; undefined before the first one ends. */
  latest(): ChecklistStatus | undefined;
  close(): void;
}

export interface ChecklistOptions {
  source: DoctorIdentity;
  agent: AgentConfig;
  intervalMs: number;
  /** The public listener this process holds now, if any (checked without probing it). */
  ownPublicListener: () => { host: string; port: number } | undefined;
}

/** Starts the checklist loop; the first run begins at once. Never throws; a failed run is logged. */
export function startChecklist(opts: ChecklistOptions, deps: { log: Logger; now: () => number; agent: AgentClient }): Checklist {
  const log = deps.log.child({ component: "checklist" });
  let latest: ChecklistStatus | undefined;
  let failing = new Set<string>();
  let running = false;
  let closed = false;

  const run = async (): Promise<void> => {
    if (running || closed) return;
    running = true;
    try {
      const own = opts.ownPublicListener();
      const { runDoctor } = await import("../doctor/index.js");
      const report = await runDoctor(
        { source: opts.source, agent: opts.agent, ...(own ? { ownPublicListener: own } : {}) },
        { log, now: deps.now, agent: deps.agent },
      );
      if (closed) return;
      latest = toStatus(report);
      const nowFailing = new Set<string>();
      for (const c of report.checks) {
        if (c.verdict !== "FAIL") continue;
        nowFailing.add(c.id);
        // Said once per FAIL, and again only if it clears and comes back.
        if (!failing.has(c.id)) log.warn({ check: c.id, seen: c.seen, fix: c.fix }, `production checklist FAIL: ${c.id}`);
      }
      failing = nowFailing;
    } catch (err) {
      log.warn({ err }, "the production checklist could not run; /status keeps the last result");
    } finally {
      running = false;
    }
  };

  void run();
  const timer = setInterval(() => void run(), opts.intervalMs);
  timer.unref();
  return {
    latest: () => latest,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

function toStatus(r: DoctorReport): ChecklistStatus {
  return {
    checkedAt: r.checkedAt,
    counts: r.counts,
    checks: r.checks.map((c) => ({ id: c.id, verdict: c.verdict, seen: c.seen, ...(c.fix ? { fix: c.fix } : {}) })),
  };
}
