#!/usr/bin/env node
// The installed `connect-sidecar` command. It checks the Node.js version before it loads the CLI, so a
// Node older than package.json's engines range gets one line saying what to install instead of a
// SyntaxError or a missing API deep in the CLI. That is why this file uses no syntax newer than ES5
// (any Node parses it) and loads the ES module CLI through a Function-built import(), which a Node
// without dynamic import never reaches.
"use strict";
var path = require("path");
var pkg = require("../package.json");

// The engines range as this file reads it: alternatives joined by "||", each ">=X.Y.Z" or "^X.Y.Z".
// A range in any other form is not checked here (the CLI runs).
function satisfies(have, range) {
  var alternatives = String(range).split("||");
  for (var i = 0; i < alternatives.length; i++) {
    var m = /^\s*(>=|\^)\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(alternatives[i]);
    if (!m) return true;
    var need = [Number(m[2]), Number(m[3] || 0), Number(m[4] || 0)];
    if (olderThan(have, need)) continue;
    if (m[1] === "^" && have[0] !== need[0]) continue;
    return true;
  }
  return false;
}

function olderThan(have, need) {
  for (var i = 0; i < 3; i++) {
    if (have[i] !== need[i]) return have[i] < need[i];
  }
  return false;
}

var range = pkg.engines && pkg.engines.node;
var have = process.versions.node.split(".").map(Number);
if (range && !satisfies(have, range)) {
  process.stderr.write(
    "connect-sidecar " + pkg.version + " needs Node.js " + range + ", and this is Node.js " + process.versions.node +
      " (" + process.execPath + ").\nInstall a Node.js release in that range (https://nodejs.org/) and run connect-sidecar with it.\n"
  );
  process.exit(1);
}

var cliUrl = require("url").pathToFileURL(path.join(__dirname, "..", "dist", "bundle", "cli.js")).href;
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
