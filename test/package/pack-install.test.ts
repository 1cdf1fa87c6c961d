// The package as a user gets it: packed from a clean checkout (tracked files only: no dist/, no build
// left over), installed from the tarball into a temporary prefix, and run from there, not from this
// repository's dist/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startChild } from "../e2e/child.js";
import { dial, echo, startEchoApp } from "../e2e/mesh.js";
import { pickFreePort } from "../../src/net/index.js";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** What may be in the tarball: the command, the bundled build, the examples and the documents. */
const PACKED = /^(bin\/connect-sidecar\.cjs|dist\/bundle\/.+\.js|examples\/.+|LICENSE|README\.md|package\.json)$/;

interface PackedFile { path: string }
interface PackResult { filename: string; files: PackedFile[] }

/** npm as `npm test` runs it (npm_execpath), else the one on PATH. */
function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const viaNode = process.env.npm_execpath?.endsWith(".js") === true;
  const [cmd, argv] = viaNode ? [process.execPath, [process.env.npm_execpath!, ...args]] : ["npm", args];
  return run(cmd, argv, { cwd, env: { ...process.env, npm_config_update_notifier: "false" }, maxBuffer: 16 << 20 });
}

/** A checkout of the files git tracks (and new ones it does not ignore), as they are in the work tree. */
async function cleanCheckout(into: string): Promise<void> {
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO, maxBuffer: 16 << 20 });
  for (const path of stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(REPO, path))) continue; // deleted in the work tree, not yet in the index
    mkdirSync(dirname(join(into, path)), { recursive: true });
    cpSync(join(REPO, path), join(into, path));
  }
  // The build tools (typescript) come from this repository's install, as `npm ci` would bring them.
  symlinkSync(join(REPO, "node_modules"), join(into, "node_modules"));
}

/**
 * A project in `dir` that depends on the tarball, locked to the dependency versions of this repository's
 * package-lock.json with their registry URLs, so that `npm ci --offline` installs it from the npm cache
 * that `npm ci` filled: no network, and the versions the tests ran against.
 */
function lockedInstallProject(dir: string, tarball: string): void {
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as Record<string, unknown>;
  const lock = JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8")) as { packages: Record<string, Record<string, unknown>> };
  const spec = `file:${tarball}`;
  const packages: Record<string, unknown> = {
    "": { name: "connect-sidecar-install", dependencies: { "connect-sidecar": spec } },
    "node_modules/connect-sidecar": { version: pkg.version, resolved: spec, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith("node_modules/") || entry.dev === true) continue;
    const name = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    const base = name.slice(name.lastIndexOf("/") + 1);
    packages[path] = { ...entry, resolved: `https://registry.npmjs.org/${name}/-/${base}-${String(entry.version)}.tgz` };
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "connect-sidecar-install", private: true, dependencies: { "connect-sidecar": spec } }));
  writeFileSync(join(dir, "package-lock.json"), JSON.stringify({ name: "connect-sidecar-install", lockfileVersion: 3, requires: true, packages }));
}

async function gitAvailable(): Promise<boolean> {
  return run("git", ["rev-parse", "--is-inside-work-tree"], { cwd: REPO }).then(() => true, () => false);
}

test("npm pack from a clean checkout installs, and the installed command runs --version, every -help, a dev agent, two proxies and the doctor", async (t: TestContext) => {
  if (!(await gitAvailable())) return t.skip("not a git checkout: no clean checkout to pack");
  const tmp = mkdtempSync(join(tmpdir(), "connect-sidecar-pack-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const checkout = join(tmp, "checkout");
  await cleanCheckout(checkout);
  assert.equal(existsSync(join(checkout, "dist")), false, "the checkout has no build output");

  // prepack builds dist/src and bundles it into dist/bundle; the tarball holds what runs (the bundle, not
  // tsc's output) and nothing else.
  const packed = JSON.parse((await npm(["pack", "--json", "--pack-destination", tmp], checkout)).stdout) as PackResult[];
  const files = packed[0]!.files.map((f) => f.path);
  assert.deepEqual(files.filter((f) => !PACKED.test(f)), [], "only the build output, examples, README, LICENSE and package.json");
  for (const must of ["bin/connect-sidecar.cjs", "dist/bundle/cli.js", "LICENSE", "README.md"]) {
    assert.ok(files.includes(must), `${must} is packed`);
  }
  assert.ok(files.some((f) => /^dist\/bundle\/chunks\/dev-agent-\w+\.js$/.test(f)), "the dev agent's chunk is packed");

  const prefix = join(tmp, "prefix");
  lockedInstallProject(prefix, join(tmp, packed[0]!.filename));
  await npm(["ci", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], prefix);
  const bin = join(prefix, "node_modules", ".bin", "connect-sidecar");
  // The bin's `#!/usr/bin/env node` finds this test's Node first. The compile cache goes in this test's
  // own cache home: Node keys its entries by module path, and each run installs to a new one.
  const cacheHome = join(tmp, "cache");
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, XDG_CACHE_HOME: cacheHome };
  for (const k of ["CACHE_DIRECTORY", "NODE_COMPILE_CACHE", "NODE_DISABLE_COMPILE_CACHE"]) delete env[k];

  const version = await run(bin, ["--version"], { env });
  const { version: expected } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
  assert.match(version.stdout, new RegExp(`^connect-sidecar v${expected.replaceAll(".", "\\.")}\\n`));
  for (const cmd of ["proxy", "dev-agent", "demo", "doctor"]) {
    const help = await run(bin, [cmd, "-help"], { env });
    assert.match(help.stdout, new RegExp(`connect-sidecar ${cmd} \\[flags\\]`), cmd);
  }

  const agent = startChild(bin, ["dev-agent", "-http-addr", "127.0.0.1:0", "-log-json"], env);
  t.after(() => void agent.proc.kill("SIGKILL"));
  const addr = /listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(await agent.waitFor(/dev agent listening on/))![1]!;
  const app = await startEchoApp(t);
  const reg = await fetch(`http://${addr}/v1/agent/service/register`, {
    method: "PUT",
    body: JSON.stringify({
      Name: "web", Port: app.port,
      Connect: { SidecarService: { Port: await pickFreePort(), Checks: [{ Name: "alias", AliasService: "web" }] } },
    }),
  });
  assert.equal(reg.status, 200, await reg.text());

  // web's sidecar, and a static-mode client proxy whose upstream reaches web through it: one round trip.
  const sidecar = startChild(bin, ["proxy", "-sidecar-for", "web", "-http-addr", addr, "-log-json", "-checklist-interval", "0"], env);
  t.after(() => void sidecar.proc.kill("SIGKILL"));
  const upstreamPort = await pickFreePort();
  const client = startChild(bin, ["proxy", "-service", "client", "-upstream", `web:${upstreamPort}`, "-http-addr", addr, "-log-json", "-checklist-interval", "0"], env);
  t.after(() => void client.proc.kill("SIGKILL"));
  await sidecar.waitFor(/"msg":"sidecar ready"/);
  await client.waitFor(/"msg":"sidecar ready"/);
  const sock = await dial(upstreamPort);
  assert.equal(await echo(sock, "through the installed proxies"), "through the installed proxies");
  sock.destroy();
  // The doctor (loaded only when it runs) checks the running sidecar: a report, and its exit code.
  const doctor = await run(bin, ["doctor", "-sidecar-for", "web", "-http-addr", addr, "-json"], { env }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
  );
  const report = JSON.parse(doctor.stdout) as { exitCode: number; checks: unknown[] };
  assert.equal(report.exitCode, doctor.code);
  assert.ok(report.checks.length > 0);
  // Each runs the installed script (after its re-exec with the proxy's node flags too), not this repository's.
  for (const p of [client, sidecar]) {
    const cmdline = readFileSync(`/proc/${p.proc.pid}/cmdline`, "utf8").split("\0");
    assert.ok(cmdline.some((a) => a.startsWith(prefix)) && !cmdline.some((a) => a.startsWith(join(REPO, "dist"))), cmdline.join(" "));
  }
  // Node writes a process's compile cache when it exits: the proxies' entries (modules that only a proxy
  // loads, such as its sidecar and listeners) are those that appear when they exit.
  const cacheDir = join(cacheHome, "connect-sidecar", "compile-cache");
  const cacheEntries = (): number => readdirSync(cacheDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
  const beforeProxiesExit = cacheEntries();
  for (const p of [client, sidecar]) {
    p.proc.kill("SIGTERM");
    assert.equal(await p.exited, 0);
  }
  assert.ok(cacheEntries() > beforeProxiesExit, "the installed proxies wrote their compiled modules to the user's compile cache");
  assert.equal(statSync(cacheDir).mode & 0o077, 0, "the compile cache directory is private");
  agent.proc.kill("SIGINT");
  assert.equal(await agent.exited, 0);
});
