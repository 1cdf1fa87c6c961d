// The front door of src/doctor: `connect-sidecar doctor`, the production checklist checked live.
export { runDoctor } from "./doctor.js";
export { formatReport, doctorExitCode } from "./report.js";
export type { DoctorExitCode } from "./report.js";
export { judgeAgentTransport } from "./transport-checks.js";
export { DEFAULT_SIDECAR_PORT_RANGE } from "./host-checks.js";
export type {
  Check,
  CheckId,
  ChecklistStep,
  DoctorDeps,
  DoctorFatal,
  DoctorIdentity,
  DoctorOptions,
  DoctorReport,
  Verdict,
} from "./types.js";
