#!/usr/bin/env node
// Deletes what tsc left in dist/src and dist/protocols from sources that no longer exist (a
// module moved or removed): tsc never deletes, and npm pack ships dist/ as it finds it. Only
// orphans go, so a test run using dist/ at the same time is not disturbed. Run by prepack.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const OUTPUT = /\.(?:js|d\.ts)(?:\.map)?$/;

function prune(dir, rel) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const file = path.join(dir, e.name);
    const relFile = path.join(rel, e.name);
    if (e.isDirectory()) {
      prune(file, relFile);
      if (fs.readdirSync(file).length === 0) fs.rmdirSync(file);
    } else if (OUTPUT.test(e.name)) {
      const source = path.join(root, relFile.replace(OUTPUT, '.ts'));
      if (!fs.existsSync(source)) {
        fs.rmSync(file, { force: true });
        console.log(`prune-dist: removed dist/${relFile} (no ${path.relative(root, source)})`);
      }
    }
  }
}

for (const top of ['src', 'protocols']) prune(path.join(root, 'dist', top), top);
