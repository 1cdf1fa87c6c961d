// Resource bounds and TLS policy of the public listener, with the real dev agent: a slow reader
// cannot grow the proxy's memory, idle connections end at the idle timeout, the connection limit
// refuses with a reason, and only TLS ≥ 1.2 with AEAD suites is spoken (TLS 1.3 by default).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../support/leaks.js";
import { closed, closedWith, dial, echo, startApp, startRig } from "./rig.js";
import { until } from "../support/wait.js";

const MiB = 1024 * 1024;

test("a slow reader behind the listener holds the client back: user-space buffering stays bounded and every byte arrives", async (t) => {
  let appSock: Socket | undefined;
  const accepted = Promise.withResolvers<void>();
  const app = await startApp({
    onSocket: (s) => {
      appSock = s;
      s.pause(); // reads nothing until the test says so
      accepted.resolve();
    },
  });
  const rig = await startRig(t, { app, logConnections: false });
  await rig.setIntention("web", "allow");
  const sock = await dial(rig.port, await rig.client("web"), await rig.rootPems());
  const chunk = randomBytes(64 * 1024);
  const limit = 512 * MiB;
  global.gc?.();
  const baseline = process.memoryUsage().arrayBuffers;
  let peak = 0;
  let written = 0;
  // Push until the client's own backpressure holds for a second with no drain: the proxy stopped reading.
  let stalled = false;
  while (!stalled && written < limit) {
    const ok = sock.write(chunk);
    written += chunk.length;
    if (ok) continue;
    const drain = once(sock, "drain").then(() => true, () => false); // listen before any await: drain may come at once
    if (written === chunk.length) await accepted.promise;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([drain, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 1000)))]);
    clearTimeout(timer);
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
    stalled = !drained;
    if (process.env.ROBUST_DEBUG) console.log({ written: written / MiB, peak: Math.round(peak / MiB), drained });
  }
  assert.ok(stalled, `the client pushed ${written / MiB} MiB without being held back`);
  // Kernel socket buffers hold some; the proxy's own buffers must not hold the rest.
  assert.ok(peak < 32 * MiB, `user-space buffers grew by ${Math.round(peak / MiB)} MiB`);
  assert.ok(written < 128 * MiB, `the client got ${written / MiB} MiB in before being held back`);

  // Now the app reads everything: nothing was lost or reordered.
  let received = 0;
  appSock!.on("data", (c: Buffer) => (received += c.length));
  appSock!.resume();
  sock.end();
  await until(() => received === written, `all ${written} bytes at the app (got ${received})`);
  appSock!.end();
  await closed(sock);
  await until(async () => (await rig.closedCount("done")) === 1, "the connection to be counted done");
});

test("an idle connection is closed at the idle timeout with reason idle_timeout; an active one is not", async (t) => {
  const rig = await startRig(t, { idleTimeoutMs: 400 });
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const roots = await rig.rootPems();
  const idle = await dial(rig.port, web, roots);
  assert.equal(await echo(idle, "x"), "x");
  const busy = await dial(rig.port, web, roots);
  // The busy one talks every 100 ms until the idle one has been cut.
  let cut = false;
  const talking = (async () => {
    while (!cut) {
      assert.equal(await echo(busy, "."), ".");
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await closedWith(rig.cap, "idle_timeout");
  await closed(idle);
  cut = true;
  await talking;
  assert.equal(busy.closed, false, "the active connection is still open");
  busy.end();
  await closed(busy);
});

test("connections over maxConns are refused with reason max_conns and the rest are served", async (t) => {
  const rig = await startRig(t, { maxConns: 3 });
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const roots = await rig.rootPems();
  const held = await Promise.all([1, 2, 3].map(() => dial(rig.port, web, roots)));
  for (const s of held) assert.equal(await echo(s, "a"), "a");
  const extra = await import("node:tls").then((tls) =>
    tls.connect({ host: "127.0.0.1", port: rig.port, cert: web.certPem, key: web.keyPem, ca: roots, checkServerIdentity: () => undefined }),
  );
  extra.on("error", () => {});
  await closedWith(rig.cap, "max_conns");
  await closed(extra);
  held[0]!.end();
  await closedWith(rig.cap, "done");
  const again = await dial(rig.port, web, roots);
  assert.equal(await echo(again, "b"), "b", "a slot freed is usable again");
  for (const s of [...held.slice(1), again]) s.end();
  await until(async () => rig.listener.activeCount() === 0, "all connections to end");
});

/** Runs `openssl s_client` with `args`; resolves with its exit code and output. */
async function sClient(args: string[]): Promise<{ code: number; out: string }> {
  const p = spawn("openssl", ["s_client", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  p.stdout.on("data", (c: Buffer) => (out += c.toString()));
  p.stderr.on("data", (c: Buffer) => (out += c.toString()));
  p.stdin.end("Q\n");
  const [code] = (await once(p, "close")) as [number];
  return { code, out };
}

test("openssl: TLS 1.2 with a non-AEAD suite, TLS 1.1 and TLS 1.0 are refused; TLS 1.3 is negotiated by default", async (t) => {
  const rig = await startRig(t);
  await rig.setIntention("web", "allow");
  const web = await rig.client("web");
  const dir = await mkdtemp(join(tmpdir(), "robust-tls-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "cert.pem"), web.certPem);
  await writeFile(join(dir, "key.pem"), web.keyPem, { mode: 0o600 });
  await writeFile(join(dir, "ca.pem"), (await rig.rootPems()).join("\n"));
  const common = ["-connect", `127.0.0.1:${rig.port}`, "-cert", join(dir, "cert.pem"), "-key", join(dir, "key.pem"), "-CAfile", join(dir, "ca.pem")];

  // Each refused by the server's alert, named: handshake_failure (40) for no shared suite, protocol_version
  // (70) for the version (a non-zero exit alone would pass an unknown option too).
  const HANDSHAKE_FAILURE = /alert handshake failure:.*SSL alert number 40/;
  const PROTOCOL_VERSION = /alert protocol version:.*SSL alert number 70/;
  for (const [extra, alert] of [
    [["-tls1_2", "-cipher", "AES128-SHA"], HANDSHAKE_FAILURE],
    [["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA"], HANDSHAKE_FAILURE],
    [["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], PROTOCOL_VERSION],
    [["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], PROTOCOL_VERSION],
  ] as const) {
    const r = await sClient([...common, ...extra]);
    assert.match(r.out, alert, `${extra.join(" ")}:\n${r.out}`);
    assert.match(r.out, /Cipher is \(NONE\)|Cipher\s+: 0000/, `${extra.join(" ")} negotiated:\n${r.out}`);
    assert.notEqual(r.code, 0, `${extra.join(" ")} should fail`);
  }
  const good = await sClient(common);
  assert.match(good.out, /TLSv1\.3/, "TLS 1.3 by default");
  const tls12 = await sClient([...common, "-tls1_2"]);
  assert.match(tls12.out, /Cipher is ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)/, tls12.out);
  await until(async () => rig.listener.activeCount() === 0, "s_client connections to end");
});
