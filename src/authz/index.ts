// The front door of src/authz: cached authorization decisions for inbound connections (STYLE §1).
export { createAuthorizer, DEFAULT_IDLE_EVICT_MS } from "./authorizer.js";
export type { Authorizer, AuthorizerDeps, AuthorizerOptions, Verdict } from "./authorizer.js";
export type { DecisionSource } from "./decision-counts.js";
export { permissionVerdict } from "./l7.js";
export type { L7Request, L7Source } from "./l7.js";
