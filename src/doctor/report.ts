// How a DoctorReport is shown: one line per check for people, JSON for machines, and the exit code.
import type { Check, DoctorReport } from "./types.js";

/** 0: nothing failed; 1: some check failed; 2: the doctor could not check (agent, identity, settings). */
export type DoctorExitCode = 0 | 1 | 2;

/** The process exit code for a report. */
export function doctorExitCode(report: DoctorReport): DoctorExitCode {
  if (report.fatal !== undefined) return 2;
  return report.checks.some((c) => c.verdict === "FAIL") ? 1 : 0;
}

/**
 * Renders a report. Text: a heading, one line per check (`VERDICT  id  seen — fix: …`), a summary.
 * JSON: the report itself plus `exitCode`, pretty-printed. Ends with a newline either way.
 */
export function formatReport(report: DoctorReport, opts: { json: boolean }): string {
  const exitCode = doctorExitCode(report);
  if (opts.json) return `${JSON.stringify({ ...report, exitCode }, null, 2)}\n`;
  const who = report.service === undefined ? "(unresolved)" : report.proxyId === undefined ? report.service : `${report.service} (proxy ${report.proxyId})`;
  const width = Math.max(...report.checks.map((c) => c.id.length), 8);
  const lines = [`connect-sidecar doctor: ${who} via ${report.agent}`];
  for (const c of report.checks) lines.push(formatLine(c, width));
  const { PASS, WARN, FAIL, SKIP } = report.counts;
  if (report.fatal) lines.push(`could not check (${report.fatal.reason}): ${report.fatal.message}`);
  lines.push(`${PASS} PASS, ${WARN} WARN, ${FAIL} FAIL, ${SKIP} SKIP: exit ${exitCode}`);
  return `${lines.join("\n")}\n`;
}

function formatLine(c: Check, width: number): string {
  const fix = c.fix !== undefined && (c.verdict === "WARN" || c.verdict === "FAIL") ? ` — fix: ${c.fix}` : "";
  return `${c.verdict.padEnd(4)}  ${c.id.padEnd(width)}  ${c.seen}${fix}`;
}
