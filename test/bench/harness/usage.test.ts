// The /proc readers every bench script uses (run, soak, micro/data-path).
import assert from "node:assert/strict";
import { test } from "node:test";
import { rssKiB, userSysNs } from "../../../bench/harness/usage.js";

const GONE = 99_999_999; // beyond any pid_max

test("rssKiB and userSysNs read this process, and say undefined for a process that is not there", () => {
  assert.ok((rssKiB(process.pid) ?? 0) > 0);
  const t = userSysNs(process.pid);
  assert.ok(t !== undefined && t.userNs >= 0 && t.sysNs >= 0);
  assert.equal(rssKiB(GONE), undefined);
  assert.equal(userSysNs(GONE), undefined);
});

test("userSysNs splits CPU as the kernel does: its user time is getrusage's user time, not its system time", () => {
  // Compute until this process has spent a good deal more user than system time (rusage, µs).
  let x = 0;
  for (let round = 0; round < 10_000 && process.cpuUsage().user < 5 * process.cpuUsage().system + 200_000; round++) {
    for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
  }
  assert.ok(x > 0);
  const rusageUserNs = process.cpuUsage().user * 1_000;
  const t = userSysNs(process.pid)!;
  assert.ok(Math.abs(t.userNs - rusageUserNs) < Math.abs(t.sysNs - rusageUserNs), `user ${t.userNs} sys ${t.sysNs} rusage user ${rusageUserNs}`);
});
