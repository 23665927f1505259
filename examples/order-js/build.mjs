// Builds src/order.js into an Aether aggregate component:
//
//   node build.mjs [out.wasm]
//
// (run by `cargo xtask test`; the default output is
// ../../target/guest-components/order_js.wasm). The SDK's build
// bundles the module, runs componentize-js against the workspace's wit/
// and writes the state schema into the component.

import { componentize } from '@bytecodealliance/componentize-js';
import { buildComponent } from '@aether/guest/build';
import { rolldown } from 'rolldown';

await buildComponent({
  entry: new URL('./src/order.js', import.meta.url),
  out: process.argv[2] ?? new URL('../../target/guest-components/order_js.wasm', import.meta.url),
  wit: new URL('../../wit', import.meta.url),
  tools: { componentize, rolldown },
});
