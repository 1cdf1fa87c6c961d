// Start-up's garbage: loading the modules and the first agent round trips leave a few MB of dead
// objects and pooled V8 pages, under the idle memory release's growth threshold. A sidecar gives
// them back to the OS once it has been quiet after ready, instead of keeping them for good.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startCli } from "./child.js";
import { registerApp, startEchoApp, startMesh } from "./mesh.js";

test("a proxy gives start-up's garbage back to the OS once it has been quiet after ready", async (t) => {
  const mesh = await startMesh(t);
  const app = await startEchoApp(t);
  await registerApp(mesh, { name: "web", appPort: app.port });
  const child = startCli(["proxy", "-sidecar-for", "web", "-http-addr", mesh.agent.address, "-log-json"]);
  t.after(() => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
  });
  await child.waitFor(/"msg":"sidecar ready"/);
  const line = JSON.parse(await child.waitFor(/"msg":"released idle memory to the OS"/)) as { rssBeforeMiB: number; rssAfterMiB: number };
  assert.ok(line.rssAfterMiB <= line.rssBeforeMiB, JSON.stringify(line));
  child.proc.kill("SIGTERM");
  assert.equal(await child.exited, 0);
});
