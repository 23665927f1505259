// Builds src/app.js into an Aether aggregate component.
//
//   node build.mjs <out.wasm>
//
// (run by `xtask/src/guests/js.rs`; the default output is
// ../../target/guest-components/bank_account_js.wasm). The WIT is the
// workspace's one canonical package, read by path from ../../wit.
//
// componentize-js embeds the StarlingMonkey engine, which by default also
// brings `fetch` (the `http` feature) and `addEventListener('fetch')` (the
// `fetch-event` feature), both importing wasi:http. Aether refuses any
// component that imports wasi:http, so both are disabled; what remains
// imports only WASI p2 cli, clocks, filesystem, io, random and sockets,
// which the host links to a deterministic, capability-free context.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, '../../target/guest-components/bank_account_js.wasm'));

const source = resolve(here, 'src/app.js');

// componentize-js reports a syntax error as "failed to parse JS source";
// loading the module in Node first names the file, line and column.
await import(pathToFileURL(source).href);

const { component } = await componentize({
  sourcePath: source,
  witPath: resolve(here, '../../wit'),
  worldName: 'aggregate-component',
  disableFeatures: ['http', 'fetch-event'],
});

await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
console.error(`componentize-js: wrote ${out} (${component.byteLength} bytes)`);
