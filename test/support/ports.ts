// Where test ports come from. Three disjoint places, none shared with another picker:
//   - port 0: whatever is bound once and read back (the kernel's ephemeral range, 32768–60999 by default);
//   - pickFreePort() of src/net: one port a test must name before it binds it, in 10000–29999;
//   - leaseSidecarRange(): a block of SIDECAR_BLOCK ports in 30000–32767 (below the ephemeral range; lower
//     if this host's range starts lower), given to a dev agent as its sidecar range: the agent hands these
//     out to sidecars registered without a Port, and the sidecars bind them.
// A block is leased with a lock file created exclusively in <tmpdir>/connect-sidecar-test-ports/, so test
// files running in parallel, and the suites of other checkouts on this machine, never get the same block;
// it is released after the test (or when the process exits); a lock whose process is gone is taken over.
// A block with a port already bound by someone that does not lease (an older checkout's suite) is skipped.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { canBind, ephemeralLow } from "../../src/net/index.js";

export const SIDECAR_PORTS_FIRST = 30_000;
export const SIDECAR_BLOCK = 32;
/** One past the last port a block may use: 32768, or this host's ephemeral range's start if lower. */
export const sidecarPortsEnd = (): number => Math.min(32_768, ephemeralLow());
export const SIDECAR_LOCK_DIR = join(tmpdir(), "connect-sidecar-test-ports");
const held = new Set<string>();

/**
 * A sidecar port range of SIDECAR_BLOCK ports no other running test holds, released after `t`.
 * `lockDir` is for the picker's own test.
 */
export async function leaseSidecarRange(
  t: Pick<TestContext, "after">,
  opts: { lockDir?: string } = {},
): Promise<{ min: number; max: number }> {
  const lockDir = opts.lockDir ?? SIDECAR_LOCK_DIR;
  mkdirSync(lockDir, { recursive: true });
  const top = sidecarPortsEnd() - 1;
  const blocks = Math.floor((top - SIDECAR_PORTS_FIRST + 1) / SIDECAR_BLOCK);
  const first = Math.floor(Math.random() * Math.max(blocks, 1));
  for (let i = 0; i < blocks; i++) {
    const min = SIDECAR_PORTS_FIRST + ((first + i) % blocks) * SIDECAR_BLOCK;
    const max = min + SIDECAR_BLOCK - 1;
    const lock = join(lockDir, String(min));
    if (!takeLock(lock)) continue;
    if (!(await allFree(min, max))) {
      release(lock);
      continue;
    }
    t.after(() => release(lock));
    return { min, max };
  }
  return assert.fail(`no free block of ${SIDECAR_BLOCK} sidecar ports in ${SIDECAR_PORTS_FIRST}–${top} (locks in ${lockDir})`);
}

function takeLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
      held.add(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (holderAlive(path)) return false;
    try {
      unlinkSync(path); // its process is gone: take it over
    } catch {
      // another process took it over first
    }
  }
  return false;
}

function holderAlive(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, "utf8"));
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function release(path: string): void {
  if (!held.delete(path)) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

process.on("exit", () => {
  for (const path of [...held]) release(path);
});

async function allFree(min: number, max: number): Promise<boolean> {
  for (let port = min; port <= max; port++) if (!(await canBind("0.0.0.0", port))) return false;
  return true;
}
