// What `connect-sidecar --version` prints and the start-up log line carries: the package's version.
import { readFileSync } from "node:fs";

/** The version in package.json (three levels above dist/src/cli/, and above dist/bundle/chunks/), or "unknown" when unreadable. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** The `--version` text: the package's version, then the Node.js and OpenSSL it runs on. */
export function versionText(): string {
  return `connect-sidecar v${packageVersion()}\nNode.js ${process.version}, OpenSSL ${process.versions.openssl}`;
}
