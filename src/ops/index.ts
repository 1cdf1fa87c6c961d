export { createMetrics } from "./metrics.js";
export type { Metrics } from "./metrics.js";
export { createLogger } from "./logger.js";
export type { Logger, LoggerOptions } from "./logger.js";
