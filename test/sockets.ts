import type { Socket } from "node:net";

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
