// Reading an agent's -config-file / -config-dir sources as Consul's agent does (agent/config/builder.go):
// a file must end in .hcl or .json; a directory contributes its .hcl and .json files in name order (others
// are skipped with a warning, subdirectories are not entered, links are followed); an empty file is no
// configuration. Each file is parsed into a plain object. The HCL parser (HashiCorp's hcl, compiled to
// WebAssembly) is loaded only when an .hcl file is read.
import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";

/** One -config-file or -config-dir flag. */
export interface ConfigSource {
  flag: "config-file" | "config-dir";
  path: string;
}

/** One parsed file: its path, the flag that named it, and its document. */
export interface ParsedConfigFile {
  path: string;
  flag: ConfigSource["flag"];
  doc: Record<string, unknown>;
}

/** A source that cannot be read or parsed; the message is Consul's text and names the file. */
export class ConfigFileError extends Error {
  override name = "ConfigFileError";
  readonly flag: ConfigSource["flag"];
  constructor(flag: ConfigSource["flag"], message: string) {
    super(message);
    this.flag = flag;
  }
}

type Format = "hcl" | "json";

function formatOf(path: string): Format | undefined {
  const ext = extname(path);
  return ext === ".hcl" ? "hcl" : ext === ".json" ? "json" : undefined;
}

/**
 * Reads and parses every file the sources name, in flag order. `warn` gets Consul's warning for a
 * skipped file. Rejects with ConfigFileError naming the file at fault.
 */
export async function readConfigSources(sources: readonly ConfigSource[], warn: (msg: string) => void): Promise<ParsedConfigFile[]> {
  const out: ParsedConfigFile[] = [];
  for (const src of sources) {
    for (const path of await filesOf(src, warn)) {
      const doc = await parseFile(src, path);
      if (doc !== undefined) out.push({ path, flag: src.flag, doc });
    }
  }
  return out;
}

async function filesOf(src: ConfigSource, warn: (msg: string) => void): Promise<string[]> {
  const info = await stat(src.path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigFileError(src.flag, `config: Open failed on ${src.path}. ${err.message}`);
  });
  if (!info.isDirectory()) {
    if (formatOf(src.path) === undefined) {
      throw new ConfigFileError(src.flag, `file ${src.path} has unknown extension; must be .hcl or .json, or config format must be set`);
    }
    return [src.path];
  }
  const names = (await readdir(src.path)).sort();
  const files: string[] = [];
  for (const name of names) {
    const path = join(src.path, name);
    if ((await stat(path)).isDirectory()) continue; // stat follows links, as Consul's EvalSymlinks does
    if (formatOf(path) === undefined) {
      warn(`skipping file ${path}, extension must be .hcl or .json, or config format must be set`);
      continue;
    }
    files.push(path);
  }
  return files;
}

async function parseFile(src: ConfigSource, path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new ConfigFileError(src.flag, `config: failed to read ${path}: ${err.message}`);
  });
  if (text.trim() === "") return undefined;
  let doc: unknown;
  try {
    doc = formatOf(path) === "hcl" ? await parseHcl(path, text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigFileError(src.flag, `failed to parse ${path}: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ConfigFileError(src.flag, `failed to parse ${path}: the file must hold an object, such as service { … }`);
  }
  return doc as Record<string, unknown>;
}

// The parser's type declarations pull in TypeScript's DOM library (`/// <reference lib="dom" />`), whose
// CryptoKey clashes with Node's: it is imported through a variable so that they are never read, and its
// one function is typed here.
const HCL_PARSER: string = "@cdktn/hcl2json";
interface HclParser { parse(filename: string, contents: string): Promise<unknown> }

// hcl2json writes every block as a list of objects, as HCL v1's decoder did (see service-definition.ts).
async function parseHcl(path: string, text: string): Promise<unknown> {
  const { parse } = (await import(HCL_PARSER)) as HclParser;
  try {
    return await parse(path, text);
  } catch (err) {
    // "parse config: [<file>:<line>,<col>: <summary>; <detail>]" → the bracketed diagnostics.
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(msg.replace(/^parse config: \[(.*)\]$/s, "$1"));
  }
}
