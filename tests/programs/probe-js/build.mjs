// Builds src/app.js into the probe component.
//
//   node build.mjs <out.wasm>
//
// (run by `xtask/src/guests/js.rs`; the default output is
// ../../../target/guest-components/probe_js.wasm). The options are those of
// examples/bank-account-js/build.mjs: the workspace's WIT, and the engine's
// `http` and `fetch-event` features disabled, because Aether refuses any
// component that imports wasi:http.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const out = resolve(process.argv[2] ?? resolve(root, 'target/guest-components/probe_js.wasm'));
const source = resolve(here, 'src/app.js');

// componentize-js reports a syntax error as "failed to parse JS source";
// loading the module in Node first names the file, line and column.
await import(pathToFileURL(source).href);

const { component } = await componentize({
  sourcePath: source,
  witPath: resolve(root, 'wit'),
  // The frozen 0.1.0 interface (`apply` takes a `list<event>`): the probe keeps
  // proving that the host serves it (the SDK's glue targets 0.2.0).
  worldName: 'aether:aggregate/aggregate-component@0.1.0',
  disableFeatures: ['http', 'fetch-event'],
});

await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
console.error(`componentize-js: wrote ${out} (${component.byteLength} bytes)`);
