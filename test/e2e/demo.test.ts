import assert from "node:assert/strict";
import { test } from "node:test";
import { once } from "node:events";
import { connect } from "node:net";
import { alive, startCli } from "./child.js";

test("`connect-sidecar demo` shows web → api through two sidecar processes, and Ctrl-C leaves no process behind", async (t) => {
  const demo = startCli(["demo", "-http-addr", "127.0.0.1:0"]);
  t.after(() => {
    if (demo.proc.exitCode === null) demo.proc.kill("SIGKILL");
  });
  await demo.waitFor(/^==> demo ready/);
  const webUrl = /web app:\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(await demo.waitFor(/web app:/))![1]!;
  const pidLine = await demo.waitFor(/sidecar pids:/);
  const pids = [...pidLine.matchAll(/=(\d+)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(alive(pid), `sidecar ${pid} runs`);
  assert.ok(demo.lines.some((l) => /web → api through both sidecars answered: \{"service":"api"/.test(l)));

  // Both sidecars come from the example files, on ports the dev agent assigned from 21000–21255 (or,
  // when other processes hold that range, from the range the demo says it used instead).
  for (const [svc, file] of [["api", "api.json"], ["web", "web.hcl"]] as const) {
    const line = await demo.waitFor(new RegExp(`^  registered ${svc} \\(port \\d+\\) with ${svc}-sidecar-proxy on port \\d+`));
    const port = Number(/on port (\d+)/.exec(line)![1]);
    const from = /from (\S+)$/.exec(line)![1]!;
    assert.ok(from.endsWith(`/${file}`), `${svc} from ${from}`);
    if (!from.endsWith(`/examples/consul.d/${file}`)) assert.ok(demo.lines.some((l) => /^note: .*a copy of examples\/consul\.d/.test(l)), "a copy is explained");
    if (port < 21000 || port > 21255) assert.ok(demo.lines.some((l) => /^note: the sidecar range 21000–21255 has no/.test(l)), `${port} is explained`);
    const sock = connect({ host: "127.0.0.1", port });
    await once(sock, "connect"); // the sidecar listens on the port the agent assigned
    sock.destroy();
  }

  const res = await fetch(webUrl);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { service: string; time: string };
  assert.equal(body.service, "api");
  // api's sidecar logged the caller's verified identity
  await demo.waitFor(/\[api-sidecar\].*source=spiffe:\/\/[^ ]+\/svc\/web/);

  demo.proc.kill("SIGINT");
  assert.equal(await demo.exited, 0);
  for (const pid of pids) assert.equal(alive(pid), false, `sidecar ${pid} is gone`);
});
