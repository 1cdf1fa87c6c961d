// The services and checks an agent's config files define, kept in the catalog: loaded at start-up and
// again on SIGHUP (Consul's reload). A load reads and validates every file before it touches the catalog,
// so a bad file leaves the services of the last good load in place; services registered over HTTP are
// never touched. Config-file registrations carry no request token: the agent registers them itself.
import type { Logger } from "pino";
import { ConfigError } from "../net/index.js";
import type { Catalog } from "./catalog.js";
import { planCheckRegistration, planRegistration } from "./catalog-register.js";
import { ConfigFileError, readConfigSources, type ConfigSource } from "./config-files.js";
import { HttpError } from "./http-error.js";
import { decodeDefinitionFile, ServiceDefinitionError } from "./service-definition.js";

export type { ConfigSource } from "./config-files.js";

/** What a load registered: each file with the services (and their sidecars) it defines. */
export interface LoadedConfig {
  files: Array<{ path: string; services: Array<{ id: string; name: string; port: number; sidecar?: { id: string; port: number } }> }>;
}

export interface ConfigServices {
  /** Reads the sources again and makes the file-defined services match them. Rejects with ConfigError naming the flag and file. */
  load(): Promise<LoadedConfig>;
  /** The result of the last good load. */
  loaded(): LoadedConfig;
}

interface Definition {
  path: string;
  flag: ConfigSource["flag"];
  body: Record<string, unknown>;
}

// A port for checking a sidecar definition before the real allocation; never registered.
const PLANNING_PORT = 1;

/** Loads service definitions from `sources` into `catalog`. Nothing is read until load(). */
export function createConfigServices(catalog: Catalog, sources: readonly ConfigSource[], log: Logger): ConfigServices {
  let current: LoadedConfig = { files: [] };
  let ownedIds = new Set<string>();
  let ownedCheckIds = new Set<string>();

  async function read(): Promise<{ services: Definition[]; checks: Definition[]; paths: string[] }> {
    const files = await readConfigSources(sources, (msg) => log.warn(msg)).catch((err: unknown) => {
      throw err instanceof ConfigFileError ? new ConfigError(err.flag, err.message) : err;
    });
    const services: Definition[] = [];
    const checks: Definition[] = [];
    for (const file of files) {
      try {
        const defs = decodeDefinitionFile(file.doc);
        services.push(...defs.services.map((body) => ({ path: file.path, flag: file.flag, body })));
        checks.push(...defs.checks.map((body) => ({ path: file.path, flag: file.flag, body })));
      } catch (err) {
        if (err instanceof ServiceDefinitionError) throw new ConfigError(file.flag, `failed to parse ${file.path}: ${err.message}`);
        throw err;
      }
    }
    return { services, checks, paths: files.map((f) => f.path) };
  }

  // Consul validates each definition after parsing (builder.validate: `service "<name>": <error>`); the
  // file is named too, since a directory holds many.
  function invalid(def: Definition, what: string, err: unknown): never {
    if (!(err instanceof HttpError)) throw err;
    throw new ConfigError(def.flag, `${def.path}: ${what}: ${err.message.trimEnd()}`);
  }

  function validate(services: Definition[], checks: Definition[]): void {
    const ids = new Set(catalog.services().map((s) => s.id));
    for (const def of services) {
      try {
        const plan = planRegistration(def.body, () => PLANNING_PORT);
        ids.add(plan.service.id);
      } catch (err) {
        invalid(def, `service ${JSON.stringify(def.body.Name ?? "")}`, err);
      }
    }
    for (const def of checks) {
      try {
        const { serviceId } = planCheckRegistration(def.body);
        if (serviceId !== "" && !ids.has(serviceId)) throw new HttpError(400, `ServiceID "${serviceId}" does not exist`);
      } catch (err) {
        invalid(def, `check ${JSON.stringify(def.body.Name ?? "")}`, err);
      }
    }
  }

  function apply(services: Definition[], checks: Definition[], paths: string[]): LoadedConfig {
    const ids = new Set<string>();
    const checkIds = new Set<string>();
    const byFile = new Map<string, LoadedConfig["files"][number]>(paths.map((p) => [p, { path: p, services: [] }]));
    for (const def of services) {
      let plan;
      try {
        plan = planRegistration(def.body, (id) => catalog.allocateSidecarPort(id));
      } catch (err) {
        invalid(def, `service ${JSON.stringify(def.body.Name ?? "")}`, err);
      }
      catalog.register(plan, { replaceExistingChecks: true });
      ids.add(plan.service.id);
      if (plan.sidecar) ids.add(plan.sidecar.service.id);
      const { service: s, sidecar } = plan;
      byFile.get(def.path)!.services.push({
        id: s.id, name: s.name, port: s.port,
        ...(sidecar ? { sidecar: { id: sidecar.service.id, port: sidecar.service.port } } : {}),
      });
    }
    for (const def of checks) {
      const { check, serviceId } = planCheckRegistration(def.body);
      catalog.registerCheck(check, serviceId === "" ? undefined : catalog.service(serviceId));
      checkIds.add(check.id);
    }
    // Definitions removed from the files are removed from the agent (after the new ones are in, so a
    // sidecar that moved between files keeps its port).
    for (const id of ownedIds) if (!ids.has(id)) catalog.deregister(id);
    for (const id of ownedCheckIds) if (!checkIds.has(id)) catalog.deregisterCheck(id);
    ownedIds = ids;
    ownedCheckIds = checkIds;
    return { files: [...byFile.values()] };
  }

  return {
    async load() {
      const { services, checks, paths } = await read();
      validate(services, checks);
      current = apply(services, checks, paths);
      return current;
    },
    loaded: () => current,
  };
}
