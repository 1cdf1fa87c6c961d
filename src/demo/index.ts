// The front door of src/demo: `connect-sidecar demo` (STYLE §1).
export { runDemo } from "./demo.js";
export type { DemoOptions, DemoDeps } from "./demo.js";
