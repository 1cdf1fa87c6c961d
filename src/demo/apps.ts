// The two small HTTP apps of the demo, on loopback. Neither knows about TLS: `api` answers JSON,
// `web` calls api through its sidecar's upstream listener and returns api's answer.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface DemoApp {
  port: number;
  close(): Promise<void>;
}

/** api on 127.0.0.1:`port`: `GET /` → {"service":"api","time":…}; `GET /stream` → one JSON line per second until the caller leaves. */
export function startApiApp(port: number): Promise<DemoApp> {
  return serve(port, (req, res) => {
    if (answerHealth(req, res)) return;
    if (req.url === "/stream") {
      res.writeHead(200, { "Content-Type": "application/x-ndjson" });
      let tick = 0;
      const send = (): boolean => res.write(`${JSON.stringify({ service: "api", tick: tick++, time: new Date().toISOString() })}\n`);
      send();
      const timer = setInterval(send, 1000);
      res.on("close", () => clearInterval(timer));
      return;
    }
    const body = JSON.stringify({ service: "api", time: new Date().toISOString() });
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
}

/** web on 127.0.0.1:`port`: `GET /` and `GET /stream` call api through `127.0.0.1:<upstreamPort>` and relay its answer. */
export function startWebApp(port: number, upstreamPort: number): Promise<DemoApp> {
  return serve(port, (req, res) => {
    if (answerHealth(req, res)) return;
    const path = req.url === "/stream" ? "/stream" : "/";
    const upstream = request({ host: "127.0.0.1", port: upstreamPort, path, method: "GET", agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, {
        "Content-Type": answer.headers["content-type"] ?? "application/octet-stream",
        "X-Demo-Via": `web -> 127.0.0.1:${upstreamPort} (web's sidecar) -> api's sidecar -> api`,
      });
      answer.pipe(res);
      answer.on("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      if (res.headersSent) return void res.destroy();
      const body = `${JSON.stringify({ service: "web", error: `api unreachable through the upstream listener: ${err.message}` })}\n`;
      res.writeHead(502, { "Content-Type": "application/json" });
      res.end(body);
    });
    res.on("close", () => upstream.destroy());
    upstream.end();
  });
}

// `GET /health`: what the HTTP checks in examples/consul.d ask; it answers without calling anything.
function answerHealth(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url !== "/health") return false;
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("ok\n");
  return true;
}

async function serve(port: number, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<DemoApp> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
