// Building a component from an aggregate module, under Node:
//
//     import { componentize } from '@bytecodealliance/componentize-js';
//     import { rolldown } from 'rolldown';
//     import { buildComponent } from '@aether/guest/build';
//
//     await buildComponent({ entry, out, wit, tools: { componentize, rolldown } });
//
// Steps:
// 1. the module is loaded in Node, which names the file, line and column of
//    a syntax error (componentize-js only says "failed to parse"), and must
//    export `handler = exportAggregate(...)`;
// 2. rolldown bundles it with the SDK into one ES module (the engine inside
//    the component cannot resolve `@aether/guest` from node_modules);
// 3. componentize-js builds the component for the world
//    `aggregate-component`, with its `http` and `fetch-event` features off:
//    both import wasi:http, which the host refuses; what remains imports only
//    WASI p2 cli, clocks, filesystem, io, random and sockets, which the host
//    links to a deterministic, capability-free context;
// 4. the state schema (`aggregate.stateSchema`) goes into the component's
//    custom section `aether:state-schema`, so snapshots survive a rebuild
//    that keeps the state's types, and only that.
//
// The tools are passed in, not imported here: they are the app's
// (pinned in its package-lock.json), and this file may be reached through
// a `file:` link from which Node would not find the app's node_modules.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { definitionOf } from './component.js';

/** The custom section the host reads the state-schema version from. */
export const STATE_SCHEMA_SECTION = 'aether:state-schema';

function path(file) {
  return file instanceof URL ? fileURLToPath(file) : resolve(String(file));
}

/** The unsigned LEB128 encoding of `value`. */
function leb128(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** `component` with a custom section `name` holding `data` appended. */
export function withCustomSection(component, name, data) {
  const nameBytes = new TextEncoder().encode(name);
  const dataBytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const payload = [...leb128(nameBytes.length), ...nameBytes, ...dataBytes];
  const section = Uint8Array.from([0, ...leb128(payload.length), ...payload]);
  const out = new Uint8Array(component.length + section.length);
  out.set(component, 0);
  out.set(section, component.length);
  return out;
}

/**
 * Builds the component for the module `entry` (which exports `handler`)
 * into `out`; returns `{ out, bytes, stateSchema }`.
 */
export async function buildComponent({ entry, out, wit, tools, features = [] }) {
  const { componentize, rolldown } = tools ?? {};
  if (typeof componentize !== 'function' || typeof rolldown !== 'function') {
    throw new TypeError('buildComponent needs tools: { componentize, rolldown } (from their npm packages)');
  }
  const entryPath = path(entry);
  const outPath = path(out);

  const module = await import(pathToFileURL(entryPath).href);
  const definition = definitionOf(module.handler);
  if (definition === undefined) {
    throw new Error(`${entryPath} must export \`handler = exportAggregate(yourAggregate)\``);
  }

  const bundle = await rolldown({
    input: entryPath,
    platform: 'neutral',
    // The WIT imports are resolved by componentize-js, not by the bundler.
    external: [/^aether:/, /^wasi:/],
    logLevel: 'warn',
  });
  let code;
  try {
    const { output } = await bundle.generate({ format: 'esm' });
    code = output[0].code;
  } finally {
    await bundle.close();
  }

  const work = await mkdtemp(join(tmpdir(), 'aether-js-build-'));
  try {
    const sourcePath = join(work, 'app.js');
    await writeFile(sourcePath, code);
    const { component } = await componentize({
      sourcePath,
      witPath: path(wit),
      // The SDK's glue implements `aether:aggregate@0.4.0` (`execute`
      // decides a command, hands its events back as one batch and applies
      // them in one call; `apply` takes a replay batch as one buffer, read
      // in place by batch.js).
      worldName: 'aether:aggregate/aggregate-component@0.4.0',
      disableFeatures: ['http', 'fetch-event', ...features],
    });
    const bytes = withCustomSection(component, STATE_SCHEMA_SECTION, definition.stateSchema);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, bytes);
    console.error(
      `componentize-js: wrote ${outPath} (${bytes.byteLength} bytes, state schema ${definition.stateSchema})`,
    );
    return { out: outPath, bytes, stateSchema: definition.stateSchema };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
