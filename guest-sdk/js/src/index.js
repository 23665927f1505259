// Aether guest SDK for JavaScript: write an event-sourced aggregate as
// plain functions over plain objects, and build it into a WebAssembly
// component with componentize-js. See README.md.

export { CONTENT_TYPE, Rejection, defineAggregate, isJson } from './aggregate.js';
export { exportAggregate } from './component.js';
export { WireError, parseLossless, stringify } from './json.js';
export {
  U64_MAX,
  any,
  bigInteger,
  boolean,
  i8,
  i16,
  i32,
  i64,
  int,
  integer,
  list,
  map,
  number,
  oneOf,
  optional,
  record,
  string,
  u8,
  u16,
  u32,
  u64,
} from './types.js';
