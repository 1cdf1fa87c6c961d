// The CLI parses flags with yargs-parser the way yargs (strict, commands) parses them; yargs only renders
// -help. Here yargs, built from the same flag tables, is the reference on arbitrary command lines.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import yargs from "yargs";
import { COMMANDS, parseFlags } from "../../src/cli/index.js";
import { RUNS } from "../fuzz/arbitraries.js";

const NO_COMMAND = "name a command: proxy, dev-agent, demo or doctor (or --version)";

/** What yargs made of `argv`: its arguments, or its failure message in the CLI's words. */
async function byYargs(argv: string[]): Promise<unknown> {
  let y = yargs(argv)
    .parserConfiguration({ "short-option-groups": false, "camel-case-expansion": true, "strip-aliased": true })
    .strict()
    .exitProcess(false)
    .help(false)
    .version(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
  for (const [name, c] of Object.entries(COMMANDS)) y = y.command(name, c.describe, (sub) => sub.options(c.flags));
  try {
    const { $0: _script, ...args } = await y.option("help", { alias: "h", type: "boolean" }).demandCommand(1, NO_COMMAND).parseAsync();
    // yargs turns a number after `--` into a number; the CLI reads arguments only as strings.
    return { ...args, _: args._.map(String) };
  } catch (err) {
    const msg = (err as Error).message;
    const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
    return unknown ? `unknown flag ${unknown[1]!.split(", ").map((f) => `-${f}`).join(", ")}; check the spelling against -help` : msg;
  }
}

function ours(argv: string[]): unknown {
  try {
    return parseFlags(argv);
  } catch (err) {
    return (err as Error).message;
  }
}

const names = [...new Set(Object.values(COMMANDS).flatMap((c) => Object.keys(c.flags)))];
const flag = fc
  .tuple(fc.constantFrom("-", "--", "--no-", "-no-"), fc.constantFrom(...names, "bogus", "h", "help", "version", "sidecarFor", "logJson"))
  .map(([dash, name]) => dash + name);
const word = fc.constantFrom("", " ", "web", "127.0.0.1:8080", "10s", "true", "false", "5", "-", "--", "-x", "=", "proxy", "a, b");
const commandLine = fc
  .tuple(
    fc.constantFrom("proxy", "dev-agent", "demo", "doctor", "bogus", "-log-json", "--", ""),
    fc.array(
      fc.oneof(
        fc.tuple(flag, word).map(([f, v]) => [f, v]),
        fc.tuple(flag, word).map(([f, v]) => [`${f}=${v}`]),
        flag.map((f) => [f]),
        word.map((w) => [w]),
      ),
      { maxLength: 8 },
    ),
  )
  .map(([first, rest]) => [first, ...rest.flat()]);

test("flags parse as yargs parses them: the same values, defaults, camelCase keys and errors", async () => {
  await fc.assert(
    fc.asyncProperty(commandLine, async (argv) => {
      assert.deepEqual(ours(argv), await byYargs(argv), JSON.stringify(argv));
    }),
    {
      numRuns: RUNS,
      examples: [
        [["proxy", "-sidecar-for", "web", "-log-connections=false", "--no-revoke-live"]],
        [["proxy", "-sidecar-for", "a", "-sidecar-for", "b", "-register", "false"]],
        [["doctor", "-service", "web", "-json", "extra", "--", "x"]],
        [["--", "x"]],
        [["demo", "--logJson=1", "-bogus-flag", "1"]],
      ],
    },
  );
});
