// examples/systemd/connect-sidecar@.service as systemd itself reads it: `systemd-analyze verify` on an
// instance of the template (no error and no warning, which is how an unknown or misspelled key shows),
// and `systemd-analyze security --offline` for its hardening.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const UNIT = fileURLToPath(new URL("../../../examples/systemd/connect-sidecar@.service", import.meta.url));

async function systemdAnalyze(t: TestContext): Promise<boolean> {
  const found = await run("systemd-analyze", ["--version"]).then(() => true, () => false);
  if (!found) t.skip("systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)");
  return found;
}

/** `systemd-analyze verify` of `text` as the unit `connect-sidecar@web.service`: exit code and stderr. */
async function verify(t: TestContext, text: string): Promise<{ code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "connect-sidecar@web.service");
  writeFileSync(path, text);
  return run("systemd-analyze", ["verify", path]).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
}

test("systemd-analyze verify passes on an instance of the unit, without a warning", async (t) => {
  if (!(await systemdAnalyze(t))) return;
  const text = readFileSync(UNIT, "utf8");
  assert.deepEqual(await verify(t, text), { code: 0, stderr: "" });
  // The check sees what it is for: a misspelled key is a warning, a missing command an error.
  assert.match((await verify(t, text.replace("ProtectClock=", "ProtectClok="))).stderr, /Unknown key 'ProtectClok'/);
  assert.notEqual((await verify(t, text.replace("/usr/bin/env connect-sidecar", "/nonexistent/connect-sidecar"))).code, 0);
});

test("the unit runs one sidecar per instance with its own token, restarts on failure, reloads with SIGHUP and is hardened", async (t) => {
  const text = readFileSync(UNIT, "utf8");
  assert.match(text, /^ExecStart=\/usr\/bin\/env connect-sidecar proxy -sidecar-for %i -token-file %d\/token /m);
  assert.match(text, /^LoadCredential=token:\/etc\/connect-sidecar\/%i\.token$/m, "the token reaches this unit only");
  assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(text, /^Restart=on-failure$/m);
  if (!(await systemdAnalyze(t))) return;
  const dir = mkdtempSync(join(tmpdir(), "unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "connect-sidecar@web.service");
  copyFileSync(UNIT, path);
  // systemd's exposure score (0 best, 10 worst): "OK" is below 2 for a network daemon's options.
  const { stdout } = await run("systemd-analyze", ["security", "--offline=true", "--threshold=20", path]);
  const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(stdout)?.[1]);
  assert.ok(score <= 2, `exposure ${score}`);
});
