// The resolved proxy configuration (Consul's computeResolvedServiceConfig + MergeServiceConfig):
// proxy-defaults and service-defaults merged into a connect-proxy registration, as the sidecar's
// own agent client reads it, and a change to an entry waking hash-blocking watches on the proxy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { agentServiceWatch, createAgentClient, getAgentService, watch, type AgentConfig, type AgentService } from "../../src/agent/index.js";
import { register, setProtocol, startAgent, tcpListener, type TestAgent } from "./catalog-fixture.js";

const putEntry = async (agent: TestAgent, body: unknown) => {
  const res = await agent.req("/v1/config", { method: "PUT", body });
  assert.deepEqual([res.status, res.json], [200, true], res.text);
};

async function registerWeb(agent: TestAgent): Promise<void> {
  await register(agent, {
    Name: "web",
    Port: 8080,
    Connect: {
      SidecarService: {
        Proxy: {
          Config: { local_connect_timeout_ms: 500 },
          Upstreams: [
            { DestinationName: "db", LocalBindPort: 9191 },
            { DestinationName: "cache", LocalBindPort: 9192, Config: { protocol: "tcp" } },
            { DestinationType: "prepared_query", DestinationName: "q", LocalBindPort: 9193 },
          ],
        },
      },
    },
  });
}

test("proxy-defaults and the destination's service-defaults fill the proxy's Config; the registration's keys win", async (t) => {
  const listener = await tcpListener(t);
  const agent = await startAgent(t, { sidecarMinPort: listener.port, sidecarMaxPort: listener.port });
  await registerWeb(agent);
  const before = (await agent.req("/v1/agent/service/web-sidecar-proxy")).json;
  assert.deepEqual(before.Proxy.Config, { local_connect_timeout_ms: 500 });
  assert.equal(before.Proxy.Upstreams[0].Config, undefined);

  await putEntry(agent, { Kind: "proxy-defaults", Name: "global", Config: { protocol: "tcp", local_connect_timeout_ms: 2000, envoy_prometheus_bind_addr: "0.0.0.0:9102" }, MeshGateway: { Mode: "local" } });
  await putEntry(agent, { Kind: "service-defaults", Name: "web", Protocol: "http", LocalRequestTimeoutMs: 3000 });
  await putEntry(agent, { Kind: "service-defaults", Name: "db", Protocol: "grpc" });

  const after = (await agent.req("/v1/agent/service/web-sidecar-proxy")).json;
  assert.deepEqual(after.Proxy.Config, {
    protocol: "http", local_connect_timeout_ms: 500, envoy_prometheus_bind_addr: "0.0.0.0:9102", local_request_timeout_ms: 3000,
  });
  assert.deepEqual(after.Proxy.MeshGateway, { Mode: "local" });
  const [db, cache, query] = after.Proxy.Upstreams;
  assert.deepEqual(db.Config, { protocol: "grpc" }, "an upstream's protocol comes from its own service-defaults");
  assert.deepEqual(cache.Config, { protocol: "tcp" }, "the registration's upstream config wins");
  assert.equal(query.Config, undefined, "prepared-query upstreams are not resolved");
  assert.notEqual(after.ContentHash, before.ContentHash);
  // /v1/agent/services shows the same merged registration; the parent service is untouched
  const all = (await agent.req("/v1/agent/services")).json;
  assert.deepEqual(all["web-sidecar-proxy"].Proxy.Config, after.Proxy.Config);
  assert.equal(all.web.Proxy, undefined);
});

test("a service-defaults Protocol shows up in the sidecar's proxy registration, and an entry change wakes its hash watch", async (t) => {
  const listener = await tcpListener(t);
  const agent = await startAgent(t, { sidecarMinPort: listener.port, sidecarMaxPort: listener.port });
  await registerWeb(agent);
  const [host, port] = agent.address.split(":");
  const config: AgentConfig = { address: { scheme: "http", host: host!, port: Number(port), pathPrefix: "" }, tls: { verify: true }, token: "" };
  const client = createAgentClient(config, { log: pino({ level: "silent" }) });
  t.after(() => client.close());

  const first = await getAgentService(client, "web-sidecar-proxy");
  assert.equal(first.proxy?.config.protocol, undefined);

  const stop = new AbortController();
  t.after(() => stop.abort());
  const seen: AgentService[] = [];
  const changed = (async () => {
    for await (const svc of watch(client, agentServiceWatch("web-sidecar-proxy"), { signal: stop.signal })) {
      seen.push(svc);
      if (svc.proxy?.config.protocol === "http") return svc;
    }
    return undefined;
  })();
  // a raw hash-blocking read beside it: an unrelated entry must not wake it, the destination's must
  const hash = (await agent.req("/v1/agent/service/web-sidecar-proxy")).json.ContentHash;
  const blocked = agent.req(`/v1/agent/service/web-sidecar-proxy?hash=${hash}&wait=10m`);
  await putEntry(agent, { Kind: "service-defaults", Name: "unrelated", Protocol: "http2" });
  await setProtocol(agent, "web", "http");

  const woke = await blocked;
  assert.equal(woke.json.Proxy.Config.protocol, "http", "the answer is the one after the destination's entry, not the unrelated one");
  assert.notEqual(woke.headers.get("x-consul-contenthash"), hash);
  const svc = await changed;
  assert.equal(svc?.proxy?.config.protocol, "http");
  assert.equal(svc?.proxy?.config.local_connect_timeout_ms, 500);
  assert.ok(seen.every((s) => s.proxy?.config.protocol === undefined || s === svc), "no intermediate value from the unrelated entry");
});
