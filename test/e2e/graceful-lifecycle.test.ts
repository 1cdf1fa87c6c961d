// The two ends of a sidecar's life beside its app: a graceful shutdown that keeps the app's upstreams
// open for the grace period while peers already stop choosing it, and a startup hook that holds the
// app until the sidecar is ready.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { delay, pickFreePort } from "../../src/net/index.js";
import { startCli, type Child } from "./child.js";
import { closed, dial, echo, type Mesh, startSidecar, webToApiMesh } from "./mesh.js";

const DRAINING_REASON = "connect-sidecar: draining for shutdown";

/** web (its sidecar a CLI child with an upstream to api) and api (an in-process sidecar). */
async function webWithUpstream(t: TestContext, flags: string[]) {
  const { mesh, apiApp, webApp, upstreamPort } = await webToApiMesh(t);
  await startSidecar(t, mesh, { t: "sidecar-for", serviceId: "api" });
  const adminPort = await pickFreePort();
  const child = startCli(
    ["proxy", "-sidecar-for", "web", "-http-addr", mesh.agent.address, "-metrics-addr", `127.0.0.1:${adminPort}`, "-log-json", ...flags],
    { CONSUL_HTTP_TOKEN: mesh.agent.managementToken },
  );
  t.after(() => {
    if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
  });
  return { mesh, child, upstreamPort, admin: `http://127.0.0.1:${adminPort}` };
}

/** The maintenance check of web's sidecar as the agent shows it, or undefined. */
async function maintenance(mesh: Mesh): Promise<{ Status: string; Notes: string } | undefined> {
  const res = await mesh.mgmt.request({ method: "GET", path: "/v1/agent/checks" });
  return (res.body as Record<string, { Status: string; Notes: string }>)["_service_maintenance:web-sidecar-proxy"];
}

/** Blocks on web's sidecar in the health catalog until an answer after `index`; resolves with its checks' statuses. */
async function nextHealth(mesh: Mesh, index: number): Promise<{ index: number; checks: Array<{ CheckID: string; Status: string }> }> {
  const res = await mesh.mgmt.request({ method: "GET", path: "/v1/health/service/web-sidecar-proxy", query: { index: String(index), wait: "30s" } });
  const entries = res.body as Array<{ Checks: Array<{ CheckID: string; Status: string }> }>;
  return { index: res.index ?? 0, checks: entries.flatMap((e) => e.Checks) };
}

async function shutdownKeepsUpstreams(t: TestContext, begin: (c: { child: Child; admin: string }) => Promise<void>): Promise<void> {
  const { mesh, child, upstreamPort, admin } = await webWithUpstream(t, ["-shutdown-grace-period-seconds", "2", "-drain-timeout", "30s"]);
  await child.waitFor(/"msg":"sidecar ready"/);
  const held = await dial(upstreamPort);
  assert.equal(await echo(held, "before"), "before", "the app's upstream connection works");
  const before = await nextHealth(mesh, 0);
  assert.ok(before.checks.every((c) => c.Status === "passing"), JSON.stringify(before.checks));
  const health = nextHealth(mesh, before.index); // wakes on the first change to web's sidecar in the catalog

  await begin({ child, admin });
  const after = await health;
  assert.deepEqual(
    after.checks.find((c) => c.CheckID === "_service_maintenance:web-sidecar-proxy")?.Status,
    "critical",
    "peers stop choosing the draining sidecar at once",
  );
  assert.equal((await fetch(`${admin}/ready`)).status, 503, "not ready while draining");
  await child.waitFor(/upstream listeners keep accepting for the shutdown grace period/);
  assert.equal(child.proc.exitCode, null, "still running within the grace period");
  const fresh = await dial(upstreamPort);
  assert.equal(await echo(fresh, "during"), "during", "a new upstream connection during the grace period works");
  assert.equal(await echo(held, "still"), "still", "the held upstream connection still works");
  held.end();
  fresh.end();
  await Promise.all([closed(held), closed(fresh)]);
  assert.equal(await child.exited, 0, "exits 0 once the grace period is over and nothing is left");
  assert.ok(child.lines.some((l) => l.includes('"msg":"stopped cleanly"')));
  assert.equal((await maintenance(mesh))?.Notes, DRAINING_REASON);
}

test("SIGTERM: the catalog shows the sidecar critical, the app's held and new upstream connections work through the grace period, exit 0", async (t) => {
  await shutdownKeepsUpstreams(t, async ({ child }) => void child.proc.kill("SIGTERM"));
});

test("a preStop hook's GET of /graceful_shutdown drains the same way, and asking twice is harmless", async (t) => {
  await shutdownKeepsUpstreams(t, async ({ admin }) => {
    for (const method of ["GET", "PUT"]) {
      const res = await fetch(`${admin}/graceful_shutdown`, { method });
      assert.equal(res.status, 200, method);
      assert.match(await res.text(), /shutting down gracefully/);
    }
  });
});

test("/graceful_startup holds a postStart hook until the sidecar is ready; the next start takes back its own maintenance, never an operator's", async (t) => {
  const { mesh, child, admin } = await webWithUpstream(t, ["-shutdown-grace-period-seconds", "0"]);
  // Asked as early as the admin server answers: the answer comes only once the sidecar is ready.
  let res: Response | undefined;
  while (res === undefined) res = await fetch(`${admin}/graceful_startup`).catch(() => delay(20).then(() => undefined));
  // "ok" is the ready answer; a hook let go for the grace period's end answers 200 too, with another text.
  assert.deepEqual([res.status, await res.text()], [200, "ok\n"], "the hook was let go because the sidecar is ready");
  assert.equal((await fetch(`${admin}/ready`)).status, 200, "ready when the hook was let go");

  child.proc.kill("SIGTERM");
  assert.equal(await child.exited, 0);
  assert.equal((await maintenance(mesh))?.Status, "critical", "a drained sidecar leaves its service in maintenance");
  const again = startCli(["proxy", "-sidecar-for", "web", "-http-addr", mesh.agent.address, "-log-json", "-shutdown-grace-period-seconds", "0"], { CONSUL_HTTP_TOKEN: mesh.agent.managementToken });
  t.after(() => void (again.proc.exitCode === null && again.proc.kill("SIGKILL")));
  await again.waitFor(/took the proxy service out of the maintenance mode an earlier drain left/);
  assert.equal(await maintenance(mesh), undefined);

  await mesh.mgmt.request({ method: "PUT", path: "/v1/agent/service/maintenance/web-sidecar-proxy", query: { enable: "true", reason: "operator: host upgrade" } });
  again.proc.kill("SIGTERM"); // its own drain cannot replace an operator's reason (Consul keeps the first)
  assert.equal(await again.exited, 0);
  const third = startCli(["proxy", "-sidecar-for", "web", "-http-addr", mesh.agent.address, "-log-json", "-shutdown-grace-period-seconds", "0"], { CONSUL_HTTP_TOKEN: mesh.agent.managementToken });
  t.after(() => void (third.proc.exitCode === null && third.proc.kill("SIGKILL")));
  await third.waitFor(/maintenance mode set by someone else; leaving it as it is/);
  assert.equal((await maintenance(mesh))?.Notes, "operator: host upgrade");
  third.proc.kill("SIGTERM");
  assert.equal(await third.exited, 0);
});
