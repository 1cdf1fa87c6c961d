// A dev agent set up well or badly, a loopback (or wildcard) app, `web` registered with a sidecar,
// and a token file: what `doctor` is run against. Everything binds this host only.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { pino } from "pino";
import { createAgentClient, resolveAgentConfig, type AgentClient } from "../../src/agent/index.js";
import { startDevAgent, type DevAgent, type DevAgentOptions } from "../../src/dev-agent/index.js";
import { runDoctor, type Check, type CheckId, type DoctorOptions, type DoctorReport } from "../../src/doctor/index.js";
import { leaseSidecarRange } from "../support/ports.js";

export const silentLog = pino({ level: "silent" });

/** This host's own non-loopback IPv4 address, if it has one (tests that need one skip otherwise). */
export function hostIPv4(): string | undefined {
  for (const infos of Object.values(networkInterfaces())) {
    for (const i of infos ?? []) if (!i.internal && i.family === "IPv4") return i.address;
  }
  return undefined;
}

export interface ScenarioOptions {
  aclsEnabled?: boolean;
  aclDefaultPolicy?: "allow" | "deny";
  /** The dev agent's HTTP address (default 127.0.0.1:0). */
  httpAddr?: string;
  /** Where the app listens: "127.0.0.1" (default) or "0.0.0.0". */
  appHost?: string;
  /** The sidecar token: "service" (identity web, default), "management", or a token body for PUT /v1/acl/token. */
  token?: "service" | "management" | "none" | Record<string, unknown>;
  tokenFileMode?: number;
  https?: DevAgentOptions["https"];
}

export interface Scenario {
  dev: DevAgent;
  admin: AgentClient;
  app: Server;
  appPort: number;
  tokenFile: string | undefined;
  sidecarRange: { min: number; max: number };
  doctorOptions(extra?: Partial<DoctorOptions>): DoctorOptions;
  doctor(extra?: Partial<DoctorOptions>): Promise<DoctorReport>;
  put(path: string, body: unknown, query?: Record<string, string>): Promise<unknown>;
}

export async function startScenario(t: TestContext, o: ScenarioOptions = {}): Promise<Scenario> {
  // Each test's dev agent gets its own sidecar range, leased below the ephemeral range (test/support/ports.ts).
  const sidecarRange = await leaseSidecarRange(t);
  const devOpts: DevAgentOptions = {
    aclsEnabled: o.aclsEnabled ?? true,
    aclDefaultPolicy: o.aclDefaultPolicy ?? "deny",
    sidecarMinPort: sidecarRange.min,
    sidecarMaxPort: sidecarRange.max,
    httpAddr: o.httpAddr ?? "127.0.0.1:0",
    ...(o.https ? { https: o.https } : {}),
  };
  const dev = await startDevAgent(devOpts);
  t.after(() => dev.stop());
  const admin = createAgentClient(resolveAgentConfig({ httpAddr: dev.address, token: dev.managementToken }, {}), { log: silentLog });
  t.after(() => admin.close());

  const app = createServer((s) => {
    s.on("error", () => undefined);
    s.resume(); // read the client's FIN so the socket closes and app.close() can finish
    s.end("hello\n");
  });
  await new Promise<void>((resolve) => app.listen({ host: o.appHost ?? "127.0.0.1", port: 0 }, resolve));
  t.after(() => new Promise<void>((resolve) => app.close(() => resolve())));
  const appPort = (app.address() as { port: number }).port;

  await admin.request({
    method: "PUT",
    path: "/v1/agent/service/register",
    body: { Name: "web", ID: "web", Port: appPort, Connect: { SidecarService: {} } },
  });

  const dir = mkdtempSync(join(tmpdir(), "doctor-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let tokenFile: string | undefined;
  const kind = o.token ?? ((o.aclsEnabled ?? true) ? "service" : "none");
  if (kind !== "none") {
    let secret: string;
    if (kind === "management") secret = dev.managementToken;
    else {
      const body = kind === "service" ? { Description: "web sidecar", ServiceIdentities: [{ ServiceName: "web" }] } : kind;
      const res = await admin.request({ method: "PUT", path: "/v1/acl/token", body });
      secret = (res.body as { SecretID: string }).SecretID;
    }
    tokenFile = join(dir, "web.token");
    writeFileSync(tokenFile, `${secret}\n`);
    chmodSync(tokenFile, o.tokenFileMode ?? 0o600);
  }

  const doctorOptions = (extra: Partial<DoctorOptions> = {}): DoctorOptions => ({
    source: { t: "sidecar-for", serviceId: "web" },
    agent: resolveAgentConfig({ httpAddr: dev.address, ...(tokenFile ? { tokenFile } : {}) }, {}),
    ...extra,
  });
  return {
    dev,
    admin,
    app,
    appPort,
    tokenFile,
    sidecarRange,
    doctorOptions,
    doctor: (extra) => runDoctor(doctorOptions(extra), { log: silentLog, now: Date.now }),
    put: async (path, body, query) => (await admin.request({ method: "PUT", path, body, ...(query ? { query } : {}) })).body,
  };
}

/** The verdict of each check, keyed by id: what the tests compare. */
export function verdicts(report: DoctorReport): Partial<Record<CheckId, Check["verdict"]>> {
  return Object.fromEntries(report.checks.map((c) => [c.id, c.verdict]));
}

export function check(report: DoctorReport, id: CheckId): Check {
  const c = report.checks.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no check ${id} in the report: ${report.checks.map((x) => x.id).join(", ")}`);
  return c;
}
