// What every bench script sets up the same way: a private scratch directory and the app child.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildHandle, ProcessGroup } from "./children.js";

const harnessDir = fileURLToPath(new URL(".", import.meta.url)); // dist/bench/harness/

/** A private (0700) temp dir; at exit every child of `group` is killed and the dir removed. */
export function scratchDir(group: ProcessGroup, prefix: string): string {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(tmp, 0o700);
  process.once("exit", () => {
    group.killAll();
    rmSync(tmp, { recursive: true, force: true });
  });
  return tmp;
}

/** Starts harness/app.js (HTTP responder + raw TCP sink/source) and resolves with its ports. */
export async function startApp(group: ProcessGroup, cpus: string | undefined): Promise<{ app: ChildHandle; ports: { http: number; bulk: number } }> {
  const app = group.spawn({ name: "app", cmd: process.execPath, args: [join(harnessDir, "app.js")], cpus, stdinPipe: true });
  const ports = await app.waitFor((l) => {
    if (!l.startsWith("{")) return undefined;
    const v = JSON.parse(l) as { http?: number; bulk?: number };
    return typeof v.http === "number" && typeof v.bulk === "number" ? { http: v.http, bulk: v.bulk } : undefined;
  }, 15_000);
  return { app, ports };
}
