// The front door of src/cli: the command line (flags, validation, -help) and running a command.
export { COMMANDS, parseFlags, UsageError } from "./flags.js";
export type { Args, FlagSpec, FlagTable } from "./flags.js";
export { devAgentCommandOptions, parseCommand, proxyCommandOptions } from "./command-line.js";
export type { Command, LogSettings } from "./command-line.js";
export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from "./main.js";
