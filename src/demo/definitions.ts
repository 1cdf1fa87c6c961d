// The service definition files the demo registers: examples/consul.d as shipped (web.hcl and api.json,
// what a user writes into /etc/consul.d), and the ports the demo's apps and sidecars take. The files name
// fixed app ports (web 8080, api 9090, web's upstream 9191); when one is taken on this host the demo uses
// another and loads a copy of the files with that port, and says so. The sidecars take the ports the dev
// agent assigns from the sidecar range 21000–21255 (spec §6.2); the range's start is moved past ports
// this host already uses, or, when the range has no room, another range is used, and the demo says so.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { canBind, pickFreePort } from "../net/index.js";

/** examples/consul.d of this package (three levels above dist/src/demo/, and above dist/bundle/chunks/). */
export const EXAMPLES_DIR = fileURLToPath(new URL("../../../examples/consul.d", import.meta.url));

/** Consul's default sidecar range (spec §6.2). */
export const SIDECAR_RANGE = { min: 21000, max: 21255 } as const;

/** The ports named in the example files, by what listens there. */
const FILE_PORTS = { web: 8080, api: 9090, webUpstream: 9191 } as const;

export type DemoPorts = Record<keyof typeof FILE_PORTS, number>;

export interface DemoDefinitions {
  /** The directory the dev agent loads with -config-dir. */
  dir: string;
  ports: DemoPorts;
  /** The dev agent's sidecar range. */
  sidecarRange: { min: number; max: number };
  /** What differs from the shipped files and range, and why; empty when nothing does. */
  notes: string[];
}

/**
 * Chooses the demo's ports and the definitions directory: EXAMPLES_DIR itself when the files' ports are
 * free, else a copy under `tmp` with the ports changed. `sidecars` is how many sidecars the files define.
 */
export async function prepareDefinitions(tmp: string, sidecars: number): Promise<DemoDefinitions> {
  const notes: string[] = [];
  const ports: DemoPorts = { ...FILE_PORTS };
  for (const [what, port] of Object.entries(FILE_PORTS) as Array<[keyof DemoPorts, number]>) {
    if (await canBind("127.0.0.1", port)) continue;
    ports[what] = await pickFreePort();
    notes.push(`port ${port} (${what} in the example files) is in use on this host: the demo uses ${ports[what]}`);
  }
  let dir = EXAMPLES_DIR;
  if (notes.length > 0) {
    dir = join(tmp, "consul.d");
    mkdirSync(dir);
    for (const name of readdirSync(EXAMPLES_DIR)) {
      let text = readFileSync(join(EXAMPLES_DIR, name), "utf8");
      for (const what of Object.keys(FILE_PORTS) as Array<keyof DemoPorts>) {
        text = text.replaceAll(new RegExp(`\\b${FILE_PORTS[what]}\\b`, "g"), String(ports[what]));
      }
      writeFileSync(join(dir, name), text);
    }
    notes.push(`the definitions loaded are a copy of examples/consul.d with those ports, in ${dir}`);
  }
  return { dir, ports, sidecarRange: await sidecarRange(sidecars, notes), notes };
}

// The agent hands sidecars the lowest ports of its range that no registered service has, without looking
// at the host (as Consul does): start the range where `count` consecutive ports are free here.
async function sidecarRange(count: number, notes: string[]): Promise<{ min: number; max: number }> {
  const { min, max } = SIDECAR_RANGE;
  for (let start = min; start + count - 1 <= max; start++) {
    if (await allFree(start, count)) {
      const busy = start - 1 === min ? `port ${min} of the sidecar range is` : `ports ${min}–${start - 1} of the sidecar range are`;
      if (start > min) notes.push(`${busy} in use on this host: the dev agent's range starts at ${start}`);
      return { min: start, max };
    }
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    const start = await pickFreePort("0.0.0.0");
    if (await allFree(start, count)) {
      notes.push(`the sidecar range ${min}–${max} has no ${count} free ports in a row on this host: the dev agent assigns from ${start}–${start + count - 1} instead`);
      return { min: start, max: start + count - 1 };
    }
  }
  throw new Error(`no ${count} free ports in a row for the sidecars, in ${min}–${max} or elsewhere`);
}

async function allFree(start: number, count: number): Promise<boolean> {
  for (let p = start; p < start + count; p++) if (!(await canBind("0.0.0.0", p))) return false;
  return true;
}
