import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test, type TestContext } from "node:test";
import { JEMALLOC_ENV, JEMALLOC_PATHS, jemallocToPreload, missingRuntimeFlags, PROXY_NODE_FLAGS, RUNTIME_FLAGS_ENV } from "../../src/ops/index.js";
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

test("jemalloc is preloaded from the first candidate only root can write, unless LD_PRELOAD is the user's or it is turned off", () => {
  const files: Record<string, { uid: number; mode: number; file?: boolean }> = {
    "/a/missing.so": { uid: 0, mode: 0o644, file: false },
    "/b/group-writable.so": { uid: 0, mode: 0o664 },
    "/c/not-roots.so": { uid: 1000, mode: 0o644 },
    "/d/good.so": { uid: 0, mode: 0o100644 },
    "/e/also-good.so": { uid: 0, mode: 0o644 },
  };
  const stat = (p: string) => {
    const f = files[p];
    if (f === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    return { uid: f.uid, mode: f.mode, isFile: () => f.file !== false };
  };
  const all = Object.keys(files);
  assert.equal(jemallocToPreload({}, all, stat), "/d/good.so");
  assert.equal(jemallocToPreload({}, ["/nowhere.so", ...all.slice(0, 3)], stat), undefined, "none fit");
  assert.equal(jemallocToPreload({ LD_PRELOAD: "/x/mine.so" }, all, stat), undefined, "the user's LD_PRELOAD");
  assert.equal(jemallocToPreload({ LD_PRELOAD: "" }, all, stat), undefined, "an empty LD_PRELOAD is the user's too");
  assert.equal(jemallocToPreload({ [JEMALLOC_ENV]: "off" }, all, stat), undefined, "turned off");
});

// Linux: the command line of the running process, as the kernel has it.
function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
}

// The libraries mapped into a running process.
function mappedLibraries(pid: number): string[] {
  return readFileSync(`/proc/${pid}/maps`, "utf8").split("\n").map((l) => l.split(/\s+/)[5] ?? "").filter((f) => f.endsWith(".so") || f.includes(".so."));
}

/**
 * Starts `node dist/bundle/cli.js proxy` with `env` (static mode against an agent that is not there: it
 * starts, logs, and waits for it), hands its pid and start line to `check` once it has logged, and kills it.
 */
async function withStartedProxy(t: TestContext, env: NodeJS.ProcessEnv, check: (pid: number, started: { pid: number; preload?: string }) => void): Promise<void> {
  const args = ["proxy", "-service", "web", "-service-addr", "127.0.0.1:1", "-listen", "127.0.0.1:0", "-http-addr", "127.0.0.1:1", "-log-json"];
  const child = startCli(args, env);
  t.after(async () => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
    await child.exited;
  });
  check(child.proc.pid!, JSON.parse(await child.waitFor(/connect-sidecar proxy starting/)) as { pid: number; preload?: string });
  child.proc.kill("SIGKILL");
  await child.exited;
}

test("`node dist/bundle/cli.js proxy` runs with the node flags, in the same process; turned off, without them", { skip: process.platform !== "linux" }, async (t) => {
  for (const [env, expectFlags] of [[{}, true], [{ [RUNTIME_FLAGS_ENV]: "off" }, false]] as const) {
    await withStartedProxy(t, env, (pid, started) => {
      assert.equal(started.pid, pid, "the same PID a supervisor started");
      const argv = cmdline(pid);
      for (const f of PROXY_NODE_FLAGS) assert.equal(argv.includes(f), expectFlags, `${f} in ${argv.join(" ")}`);
    });
  }
});

const jemalloc = jemallocToPreload(process.env); // undefined where this test's own LD_PRELOAD is set
test("a proxy runs on jemalloc where the host has it, and says so; turned off, on glibc's malloc", {
  skip: process.platform !== "linux" ? "Linux only" : jemalloc === undefined ? `LD_PRELOAD set, or no jemalloc at ${JEMALLOC_PATHS.join(", ")} (.ci/run installs libjemalloc2)` : false,
}, async (t) => {
  for (const [env, expectJemalloc] of [[{}, true], [{ [JEMALLOC_ENV]: "off" }, false]] as const) {
    await withStartedProxy(t, env, (pid, started) => {
      const libs = mappedLibraries(pid);
      assert.equal(libs.some((l) => l === jemalloc), expectJemalloc, libs.join(" "));
      assert.equal(started.preload, expectJemalloc ? jemalloc : undefined, "the start line names the preload");
    });
  }
});
