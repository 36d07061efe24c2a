#!/usr/bin/env node
// A `solc` look-alike for py-solc-x, built on the npm package `solc` (solcjs).
// `solcjs --standard-json` prints a non-JSON line before its JSON, and no native solc can
// be downloaded on these machines; this wrapper answers `--version` and `--standard-json`
// (stdin -> stdout, JSON only), resolving imports from the project and node_modules.
'use strict';
const fs = require('fs');
const path = require('path');

const root = process.env.SETTLEMENT_PROJECT_ROOT || path.resolve(__dirname, '..');
const solc = require(path.join(root, 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solcjs_wrapper: only --version and --standard-json are supported\n');
  process.exit(2);
}

function findImports(importPath) {
  const candidates = [path.join(root, importPath), path.join(root, 'node_modules', importPath)];
  for (const candidate of candidates) {
    const resolved = path.resolve(candidate);
    if (!resolved.startsWith(root + path.sep)) continue; // never read outside the project
    if (fs.existsSync(resolved)) return { contents: fs.readFileSync(resolved, 'utf8') };
  }
  return { error: 'File not found: ' + importPath };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(solc.compile(input, { import: findImports }));
});
