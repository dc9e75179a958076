#!/usr/bin/env node
// Validate one .glb/.gltf with the Khronos glTF validator; prints its JSON report on stdout.
// Usage: node tools/gltf-validator/validate.js path/to/mesh.glb
"use strict";
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

const file = process.argv[2];
if (!file) {
  process.stderr.write("usage: validate.js FILE.glb\n");
  process.exit(2);
}
const data = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(data, {
    uri: path.basename(file),
    maxIssues: 0,
    externalResourceFunction: () => Promise.reject(new Error("external resources are not allowed")),
  })
  .then((report) => process.stdout.write(JSON.stringify(report, null, 2) + "\n"))
  .catch((err) => {
    process.stderr.write(String(err) + "\n");
    process.exit(1);
  });
