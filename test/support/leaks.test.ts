// The socket-leak fixture itself: it must fail a test that leaves a socket open, and pass one that closes
// everything in its t.after clean-ups (which run before the check).
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { test } from "node:test";
import { leakChecked, trackSockets } from "./leaks.js";

async function listening(): Promise<{ port: number; close(): void; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => void accepted.push(s));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, close: () => server.close(), accepted };
}

test("a socket left open fails the check, naming its kind and the test line that opened it", async () => {
  const tracker = trackSockets();
  const server = await listening();
  const client = connect(server.port, "127.0.0.1");
  await once(client, "connect");
  server.close(); // the listener closes; the connection is leaked
  try {
    await assert.rejects(tracker.assertAllClosed({ settleMs: 200 }), (err: Error) => {
      assert.match(err.message, /socket\(s\) opened by this test are still open/);
      assert.match(err.message, /TCPWRAP opened at/);
      assert.match(err.message, /leaks\.test\.js/);
      return true;
    });
  } finally {
    client.destroy();
    for (const s of server.accepted) s.destroy();
  }
});

test("leakChecked fails a body that leaks and passes one whose t.after closes everything", async (t) => {
  let leaked: Socket | undefined;
  let server: Awaited<ReturnType<typeof listening>> | undefined;
  await assert.rejects(
    leakChecked(
      async () => {
        server = await listening();
        leaked = connect(server.port, "127.0.0.1");
        await once(leaked, "connect");
      },
      { settleMs: 200 },
    )(t),
    /still open after its clean-up/,
  );
  leaked?.destroy();
  for (const s of server?.accepted ?? []) s.destroy();
  server?.close();

  const order: string[] = [];
  await leakChecked(async (ctx) => {
    const s = await listening();
    const c = connect(s.port, "127.0.0.1");
    await once(c, "connect");
    ctx.after(() => void order.push("first"));
    ctx.after(() => {
      order.push("second");
      c.destroy();
      for (const a of s.accepted) a.destroy();
      s.close();
    });
  })(t);
  assert.deepEqual(order, ["first", "second"]);
});
