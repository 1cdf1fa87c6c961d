// A peer host for tests that need a network path the test can cut: a network namespace joined to
// ours by a veth pair. Needs root and iproute2 (CI runs as root); callers skip, saying why, without.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";
import type { TestContext } from "node:test";

const run = promisify(execFile);

export interface PeerHost {
  /** Our address on the link (bind here to be reachable from the peer). */
  readonly hostIp: string;
  /** The peer's address. */
  readonly peerIp: string;
  /** Starts `cmd` inside the peer's namespace. */
  spawn(cmd: string, args: string[]): ChildProcess;
  /** Takes the peer's side of the link down: from then on it neither answers nor says goodbye. */
  vanish(): Promise<void>;
}

/** A peer namespace, removed when the test ends; or the reason there can be none on this host. */
export async function peerHost(t: TestContext): Promise<PeerHost | { unavailable: string }> {
  if (process.getuid?.() !== 0) return { unavailable: "needs root for a network namespace" };
  const id = `${process.pid}-${randomInt(1_000_000)}`;
  const ns = `cs-${id}`;
  const [a, b] = [`csa${id}`.slice(0, 15), `csb${id}`.slice(0, 15)];
  const net = `10.${randomInt(200, 250)}.${randomInt(0, 256)}`; // a /30 of its own
  const [hostIp, peerIp] = [`${net}.1`, `${net}.2`];
  try {
    await run("ip", ["netns", "add", ns]);
  } catch (err) {
    return { unavailable: `ip netns add failed: ${(err as Error).message.split("\n")[0]}` };
  }
  t.after(() => run("ip", ["netns", "del", ns]).then(() => undefined)); // takes the veth pair with it
  const inNs = (...args: string[]) => run("ip", ["netns", "exec", ns, "ip", ...args]);
  await run("ip", ["link", "add", a, "type", "veth", "peer", "name", b]);
  await run("ip", ["link", "set", b, "netns", ns]);
  await run("ip", ["addr", "add", `${hostIp}/30`, "dev", a]);
  await run("ip", ["link", "set", a, "up"]);
  await inNs("addr", "add", `${peerIp}/30`, "dev", b);
  await inNs("link", "set", b, "up");
  await inNs("link", "set", "lo", "up");
  return {
    hostIp,
    peerIp,
    spawn: (cmd, args) => spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] }),
    vanish: () => inNs("link", "set", b, "down").then(() => undefined),
  };
}
