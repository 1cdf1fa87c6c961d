import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { missingRuntimeFlags, PROXY_NODE_FLAGS, RUNTIME_FLAGS_ENV } from "../../src/ops/index.js";
import { startCli } from "../e2e/child.js";

test("a proxy misses the node flags nobody gave; other commands, -help and the off switch miss none", () => {
  assert.deepEqual(missingRuntimeFlags(["proxy", "-sidecar-for", "web"], [], {}), PROXY_NODE_FLAGS);
  assert.deepEqual(missingRuntimeFlags(["proxy"], PROXY_NODE_FLAGS, {}), []);
  assert.deepEqual(missingRuntimeFlags(["proxy"], [], { NODE_OPTIONS: PROXY_NODE_FLAGS.join(" ") }), []);
  // A flag the user set, to any value, is theirs.
  const [first, ...rest] = PROXY_NODE_FLAGS;
  assert.deepEqual(missingRuntimeFlags(["proxy"], [`${first!.split("=")[0]}=7`], {}), rest);
  assert.deepEqual(missingRuntimeFlags(["dev-agent"], [], {}), []);
  assert.deepEqual(missingRuntimeFlags(["proxy", "-help"], [], {}), []);
  assert.deepEqual(missingRuntimeFlags(["proxy"], [], { [RUNTIME_FLAGS_ENV]: "off" }), []);
});

// Linux: the command line of the running process, as the kernel has it.
function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
}

test("`node dist/src/cli.js proxy` runs with the node flags, in the same process; turned off, without them", { skip: process.platform !== "linux" }, async (t) => {
  // Static mode against an agent that is not there: the proxy starts, logs, and waits for it.
  const args = ["proxy", "-service", "web", "-service-addr", "127.0.0.1:1", "-listen", "127.0.0.1:0", "-http-addr", "127.0.0.1:1", "-log-json"];
  for (const [env, expectFlags] of [[{}, true], [{ [RUNTIME_FLAGS_ENV]: "off" }, false]] as const) {
    const child = startCli(args, env);
    t.after(async () => {
      if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
      await child.exited;
    });
    const started = JSON.parse(await child.waitFor(/connect-sidecar proxy starting/)) as { pid: number };
    assert.equal(started.pid, child.proc.pid, "the same PID a supervisor started");
    const argv = cmdline(child.proc.pid!);
    for (const f of PROXY_NODE_FLAGS) assert.equal(argv.includes(f), expectFlags, `${f} in ${argv.join(" ")}`);
    child.proc.kill("SIGKILL");
    await child.exited;
  }
});
