#!/usr/bin/env node
// Compile Solidity with the pinned npm `solc` package (soljson, no native binary).
//
//   node tools/solc_compile.js NODE_MODULES_DIR < standard-json-input > standard-json-output
//
// Used by isagen/solc.py; prints the compiler's standard-JSON output on stdout
// and `solc version: <v>` on stderr when asked with --version.
"use strict";
const path = require("path");

const modules = process.argv[2];
if (!modules) {
  process.stderr.write("usage: solc_compile.js NODE_MODULES_DIR [--version]\n");
  process.exit(2);
}
const solc = require(path.join(modules, "solc"));
if (process.argv[3] === "--version") {
  process.stdout.write(solc.version() + "\n");
  process.exit(0);
}
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  process.stdout.write(solc.compile(input));
});
