// Preloaded with --import (via NODE_OPTIONS) into a CLI child: records every module it loads and,
// at exit, writes them with Node's own list of built-in modules to $LOADED_MODULES_FILE.
import { registerHooks } from "node:module";

const file = process.env.LOADED_MODULES_FILE;
const urls: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    urls.push(url);
    return nextLoad(url, context);
  },
});
process.on("exit", () => {
  if (file === undefined) return;
  // process.moduleLoadList: Node's (untyped) list of the built-ins and bindings loaded so far.
  const loadList = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  const builtins = loadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice("NativeModule ".length));
  process.getBuiltinModule("node:fs").writeFileSync(file, JSON.stringify({ urls, builtins }));
});
