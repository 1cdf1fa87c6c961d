#!/usr/bin/env node
// The installed `connect-sidecar` command. It checks the Node.js version before it loads the CLI, so a
// Node older than package.json's engines range gets one line saying what to install instead of a
// SyntaxError or a missing API deep in the CLI. That is why this file uses no syntax newer than ES5
// (any Node parses it) and loads the ES module CLI through a Function-built import(), which a Node
// without dynamic import never reaches.
"use strict";
var path = require("path");
var pkg = require("../package.json");

function minimumVersion(range) {
  var m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(range).trim());
  return m ? [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)] : undefined;
}

function olderThan(have, need) {
  for (var i = 0; i < 3; i++) {
    if (have[i] !== need[i]) return have[i] < need[i];
  }
  return false;
}

var need = minimumVersion(pkg.engines && pkg.engines.node);
var have = process.versions.node.split(".").map(Number);
if (need !== undefined && olderThan(have, need)) {
  process.stderr.write(
    "connect-sidecar " + pkg.version + " needs Node.js " + pkg.engines.node + ", and this is Node.js " + process.versions.node +
      " (" + process.execPath + ").\nInstall a Node.js release in that range (https://nodejs.org/) and run connect-sidecar with it.\n"
  );
  process.exit(1);
}

var cliUrl = require("url").pathToFileURL(path.join(__dirname, "..", "dist", "src", "cli.js")).href;
var importModule = new Function("specifier", "return import(specifier)");
importModule(cliUrl).then(
  function (cli) {
    return cli.runCli(process.argv.slice(2));
  },
  function (err) {
    process.stderr.write("connect-sidecar: could not load " + cliUrl + ": " + (err && err.message ? err.message : String(err)) + "\n");
    process.exitCode = 1;
  }
);
