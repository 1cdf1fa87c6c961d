import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import type { TestContext } from "node:test";

/**
 * Resolves once `sock` has closed, with how it ended: "FIN" for a clean end, else the error's code
 * ("ECONNRESET" when the connection was cut). Reads and drops whatever still arrives.
 */
export function closed(sock: Socket): Promise<string> {
  let how = "FIN";
  sock.on("error", (e: NodeJS.ErrnoException) => void (how = e.code ?? e.message));
  sock.resume();
  if (sock.closed) return Promise.resolve(how);
  return new Promise((resolve) => sock.once("close", () => resolve(how))); // not events.once: an 'error' must not reject
}

/**
 * A black hole on 127.0.0.1: accepts TCP and never sends a byte, so a TLS handshake never
 * completes. Closed, with every connection it accepted, after the test.
 */
export async function startBlackHole(t: TestContext): Promise<{ port: number }> {
  const held = new Set<Socket>();
  const hole = createServer((s) => void held.add(s.on("error", () => {})));
  hole.listen(0, "127.0.0.1");
  await once(hole, "listening");
  t.after(() => {
    for (const s of held) s.destroy();
    hole.close();
  });
  return { port: (hole.address() as AddressInfo).port };
}
