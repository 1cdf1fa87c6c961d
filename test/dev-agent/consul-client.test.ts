// Drives the dev agent with an independent client, the npm package `consul`: what it sends must be
// accepted and what we answer must parse in it (registration, listing, health, blocking watch, queries).
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import Consul from "consul";
import { startAgent, tcpListener } from "./catalog-fixture.js";

interface HealthEntry {
  Node: { Node: string; Address: string; Datacenter: string };
  Service: { ID: string; Service: string; Port: number; Proxy: { DestinationServiceName: string; LocalServicePort: number } };
  Checks: Array<{ CheckID: string; Status: string }>;
}

test("the consul npm client registers a service with a sidecar, reads it back and watches its health", async (t) => {
  const listener = await tcpListener(t);
  const agent = await startAgent(t, { sidecarMinPort: listener.port, sidecarMaxPort: listener.port });
  const [host, port] = agent.address.split(":");
  const consul = new Consul({ host: host!, port: Number(port) });
  t.after(() => consul.destroy());

  await consul.agent.service.register({
    name: "web", port: 8080, tags: ["v1"], check: { name: "web heartbeat", checkid: "web-ttl", ttl: "1h", timeout: "1s" }, connect: { sidecarservice: {} },
  });
  const services = (await consul.agent.service.list()) as Record<string, { Kind?: string; Port: number; Proxy?: { DestinationServiceID: string } }>;
  assert.deepEqual(Object.keys(services).sort(), ["web", "web-sidecar-proxy"]);
  assert.equal(services["web-sidecar-proxy"]!.Kind, "connect-proxy");
  assert.equal(services["web-sidecar-proxy"]!.Port, listener.port);
  assert.equal(services["web-sidecar-proxy"]!.Proxy!.DestinationServiceID, "web");

  const watch = consul.watch({
    method: consul.health.service,
    options: { service: "web-sidecar-proxy", passing: "true", wait: "10s" },
    backoffFactor: 10,
  });
  t.after(() => watch.end());
  const errors: unknown[] = [];
  watch.on("error", (err: unknown) => errors.push(err));
  const healthy = new Promise<HealthEntry[]>((resolve) => {
    watch.on("change", (data: HealthEntry[]) => {
      if (data.length === 1) resolve(data);
    });
  });
  const [first] = (await once(watch, "change")) as [HealthEntry[]];
  assert.ok(Array.isArray(first));
  assert.equal(first.length, 0, "the alias of web is critical until web's TTL check passes");

  await consul.agent.check.pass({ id: "web-ttl", note: "ok" });
  const [entry] = await healthy;
  assert.equal(entry!.Node.Node, "node1");
  assert.equal(entry!.Node.Datacenter, "dc1");
  assert.equal(entry!.Service.ID, "web-sidecar-proxy");
  assert.equal(entry!.Service.Proxy.DestinationServiceName, "web");
  assert.equal(entry!.Service.Proxy.LocalServicePort, 8080);
  assert.ok(entry!.Checks.every((c) => c.Status === "passing"));
  assert.deepEqual(errors, []);
  watch.end();

  const q = (await consul.query.create({ name: "web-q", service: { service: "web", onlypassing: true } })) as { ID: string };
  const exec = (await consul.query.execute(q.ID)) as { Service: string; Nodes: HealthEntry[] };
  assert.equal(exec.Service, "web");
  assert.deepEqual(exec.Nodes.map((n) => n.Service.ID), ["web"]);

  await consul.agent.service.deregister("web");
  assert.deepEqual(await consul.agent.service.list(), {});
});
