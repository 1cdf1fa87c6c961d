import assert from "node:assert/strict";
import { test } from "node:test";
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
