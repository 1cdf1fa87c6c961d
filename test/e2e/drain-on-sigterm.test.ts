import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { test } from "node:test";
import { startCli } from "./child.js";
import { closed, dial, echo, startSidecar, webToApiMesh } from "./mesh.js";

async function meshWithApiChild(t: import("node:test").TestContext, drainTimeout: string) {
  const { mesh, apiApp, webApp, upstreamPort } = await webToApiMesh(t);
  const child = startCli(
    ["proxy", "-sidecar-for", "api", "-http-addr", mesh.agent.address, "-drain-timeout", drainTimeout, "-log-json"],
    { CONSUL_HTTP_TOKEN: mesh.agent.managementToken },
  );
  t.after(() => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
  });
  const { admin } = JSON.parse(await child.waitFor(/"msg":"sidecar ready"/)) as { admin: string };
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "web" });
  return { mesh, child, upstreamPort, admin };
}

const TRANSFER_BYTES = 10 * 1024 * 1024;

/**
 * Sends `payload` through the echo path in chunks (honouring backpressure), half-closes, and
 * resolves with the SHA-256 of everything echoed back. `onFirstMiB` fires once 1 MiB has come back.
 */
function echoTransfer(sock: Socket, payload: Buffer, onFirstMiB: () => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let received = 0;
    sock.on("data", (b: Buffer) => {
      if (received < 1 << 20 && received + b.length >= 1 << 20) onFirstMiB();
      received += b.length;
      hash.update(b);
    });
    sock.once("end", () => (received === payload.length ? resolve(hash.digest("hex")) : reject(new Error(`echoed ${received} of ${payload.length} bytes`))));
    sock.once("error", reject);
    let offset = 0;
    const pump = (): void => {
      while (offset < payload.length) {
        const chunk = payload.subarray(offset, offset + 64 * 1024);
        offset += chunk.length;
        if (!sock.write(chunk)) return void sock.once("drain", pump);
      }
      sock.end();
    };
    pump();
  });
}

test("SIGTERM during five 10 MB transfers: all finish intact, new connections are refused, exit 0", async (t) => {
  const { child, upstreamPort, admin } = await meshWithApiChild(t, "30s");
  assert.equal((await fetch(`${admin}/ready`)).status, 200);
  const payload = randomBytes(TRANSFER_BYTES);
  const want = createHash("sha256").update(payload).digest("hex");
  const socks = await Promise.all(Array.from({ length: 5 }, () => dial(upstreamPort)));
  let started = 0;
  let signalled!: () => void;
  const allStarted = new Promise<void>((r) => (signalled = r));
  const transfers = socks.map((s) => echoTransfer(s, payload, () => ++started === socks.length && signalled()));

  await allStarted; // every transfer is mid-flight
  child.proc.kill("SIGTERM");
  await child.waitFor(/public listener stopped accepting/);
  const ready = await fetch(`${admin}/ready`);
  assert.equal(ready.status, 503, "not ready while draining");
  assert.match(await ready.text(), /draining/);
  const fresh = await dial(upstreamPort);
  await assert.rejects(echo(fresh, "new"), /connection ended/);
  await closed(fresh);

  for (const digest of await Promise.all(transfers)) assert.equal(digest, want, "each transfer arrives intact");
  await Promise.all(socks.map(closed));
  assert.equal(await child.exited, 0);
  assert.ok(child.lines.some((l) => l.includes('"msg":"stopped cleanly"')));
});

test("SIGTERM with a connection still open past -drain-timeout cuts it and exits 1; first line names Node and OpenSSL", async (t) => {
  const { child, upstreamPort } = await meshWithApiChild(t, "200ms");
  const live = await dial(upstreamPort);
  assert.equal(await echo(live, "stay"), "stay");
  const wasClosed = closed(live);
  child.proc.kill("SIGTERM");
  assert.equal(await child.exited, 1);
  assert.equal(await wasClosed, "ECONNRESET"); // cut, and the client can tell
  const first = JSON.parse(child.lines[0]!) as Record<string, unknown>;
  assert.equal(first.node, process.versions.node);
  assert.equal(first.openssl, process.versions.openssl);
});
