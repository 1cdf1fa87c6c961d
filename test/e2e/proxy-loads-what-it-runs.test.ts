// What a running `proxy` process loads: every module costs resident memory (its code, and the pages
// of the node binary that compile and run it), so a proxy loads no module it does not run. Checked for
// the bundle (what the installed command runs) and for tsc's output (`node dist/src/cli.js`).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CLI_PATH, startChild, UNBUNDLED_CLI_PATH } from "./child.js";
import { registerApp, startEchoApp, startMesh } from "./mesh.js";

const HOOK = fileURLToPath(new URL("./loaded-modules.hook.js", import.meta.url));
const DIST_SRC = pathToFileURL(fileURLToPath(new URL("../../src/", import.meta.url))).href;

/**
 * The dist/src modules behind the loaded URLs: a bundle file stands for every module esbuild put in it
 * (it marks each with a `// dist/src/<path>` line); any other URL stands for itself.
 */
function sourceModules(urls: string[]): string[] {
  return urls.flatMap((u) => {
    if (!/\/dist\/bundle\/.+\.js$/.test(u)) return [u];
    const marks = [...readFileSync(new URL(u), "utf8").matchAll(/^\/\/ dist\/src\/(.+\.js)$/gm)];
    assert.ok(marks.length > 0 || /\/chunks\/[\w-]+\.js$/.test(u), `${u} names the modules it holds`);
    return marks.map((m) => `${DIST_SRC}${m[1]}`);
  });
}

for (const [name, cli] of [["bundled", CLI_PATH], ["unbundled", UNBUNDLED_CLI_PATH]] as const) {
  test(`a running proxy (${name}) loads neither yargs, prom-client's index, @opentelemetry/api, Node's bundled undici nor the doctor it does not run`, async (t) => {
    const mesh = await startMesh(t);
    const app = await startEchoApp(t);
    await registerApp(mesh, { name: "web", appPort: app.port });
    const dir = mkdtempSync(join(tmpdir(), "loaded-modules-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "loaded.json");
    const child = startChild(process.execPath, [cli, "proxy", "-sidecar-for", "web", "-http-addr", mesh.agent.address, "-log-json", "-checklist-interval", "0"], {
      NODE_OPTIONS: `--import=${HOOK}`,
      LOADED_MODULES_FILE: file,
    });
    t.after(() => {
      if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
    });
    const ready = JSON.parse(await child.waitFor(/"msg":"sidecar ready"/)) as { admin: string };
    assert.equal((await fetch(`${ready.admin}/metrics`)).status, 200); // a scrape runs the metrics code too
    child.proc.kill("SIGTERM");
    assert.equal(await child.exited, 0);

    const { urls, builtins } = JSON.parse(readFileSync(file, "utf8")) as { urls: string[]; builtins: string[] };
    const bundleFiles = urls.filter((u) => u.includes("/dist/bundle/"));
    if (name === "bundled") assert.ok(bundleFiles.length > 0 && !urls.some((u) => u.startsWith(DIST_SRC)), "the bundle runs, not tsc's output");
    else assert.deepEqual(bundleFiles, [], "tsc's output runs, not the bundle");
    const modules = sourceModules(urls);
    const loaded = (re: RegExp) => modules.filter((u) => re.test(u));
    assert.ok(loaded(/\/dist\/src\/sidecar\/sidecar\.js$/).length === 1, "the hook saw the proxy's own modules");
    assert.deepEqual(loaded(/\/node_modules\/(yargs|cliui|string-width|y18n)\//), [], "yargs renders -help only");
    assert.deepEqual(loaded(/\/node_modules\/prom-client\/index\.js$|\/node_modules\/@opentelemetry\//), [], "prom-client from its lib/ files");
    assert.deepEqual(loaded(/\/dist\/src\/(doctor|dev-agent|demo)\//), [], "no doctor with -checklist-interval 0, never the dev agent or demo");
    assert.ok(!builtins.includes("internal/deps/undici/undici"), "Node's bundled undici stays unloaded (no ESM import of node:http)");
  });
}
