// The batch layout (`aether:aggregate@0.4.0`): the stored events `apply`
// receives, and the decided events `execute` hands back. Events one after
// another, each a 28-byte little-endian header (version u64, timestamp-ms
// u64, then the u32 lengths of its event type, content type and data)
// followed by those three byte strings. The layout is specified on `apply`
// in wit/aggregate.wit.
//
// The apply loop (component.js) reads the batch in place with one DataView:
// the data is a `subarray`, and the type names are compared as bytes
// against the aggregate's names and `application/json`, so the common
// event costs no string decode besides its JSON. The host guarantees the
// layout; a batch that breaks it (a host bug) is reported as an
// `apply-error`, as the Rust SDK does, rather than read past its end.

import { CONTENT_TYPE } from './aggregate.js';

/** Bytes of the fixed header in front of each event. */
export const HEADER_LEN = 28;

const encoder = new TextEncoder();
const names = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** `application/json` as bytes, the content type of every event the SDK writes. */
export const JSON_BYTES = encoder.encode(CONTENT_TYPE);
const JSON_WORDS = [0, 4, 8, 12].map((at) => new DataView(JSON_BYTES.buffer).getUint32(at, true));

/** The message of the apply-error for a batch that breaks the layout at byte `offset`. */
export function malformed(offset, reason) {
  return `the host sent a malformed batch (byte ${offset}): ${reason}`;
}

/** Whether the `length` bytes at `start` of `view` are `application/json` (four u32 compares). */
export function isJsonAt(view, start, length) {
  return (
    length === 16 &&
    view.getUint32(start, true) === JSON_WORDS[0] &&
    view.getUint32(start + 4, true) === JSON_WORDS[1] &&
    view.getUint32(start + 8, true) === JSON_WORDS[2] &&
    view.getUint32(start + 12, true) === JSON_WORDS[3]
  );
}

/**
 * A function `(bytes, start, length)` that finds the value of `table` (a
 * Map from name to value) whose name's UTF-8 bytes are those, or undefined.
 */
export function byteLookup(table) {
  const keys = [];
  const values = [];
  for (const [name, value] of table) {
    keys.push(encoder.encode(name));
    values.push(value);
  }
  const count = keys.length;
  return function lookup(bytes, start, length) {
    for (let index = 0; index < count; index++) {
      const key = keys[index];
      if (key.length !== length) continue;
      let at = length - 1;
      while (at >= 0 && bytes[start + at] === key[at]) at--;
      if (at < 0) return values[index];
    }
    return undefined;
  };
}

/** The text of a type name in the batch, or undefined if it is not UTF-8. */
export function nameAt(bytes, start, length) {
  try {
    return names.decode(bytes.subarray(start, start + length));
  } catch {
    return undefined;
  }
}

/**
 * A batch as the host writes it, from events `{ version, eventType,
 * contentType, data, timestampMs? }` (versions and timestamps as BigInts
 * or Numbers, data as bytes): for tests and the testing helpers.
 */
export function writeBatch(events) {
  const parts = events.map((event) => {
    const type = encoder.encode(event.eventType);
    const contentType = encoder.encode(event.contentType ?? CONTENT_TYPE);
    return { event, type, contentType, data: event.data ?? new Uint8Array() };
  });
  const total = parts.reduce((sum, p) => sum + HEADER_LEN + p.type.length + p.contentType.length + p.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const { event, type, contentType, data } of parts) {
    view.setBigUint64(offset, BigInt(event.version), true);
    view.setBigUint64(offset + 8, BigInt(event.timestampMs ?? 0), true);
    view.setUint32(offset + 16, type.length, true);
    view.setUint32(offset + 20, contentType.length, true);
    view.setUint32(offset + 24, data.length, true);
    offset += HEADER_LEN;
    for (const bytes of [type, contentType, data]) {
      out.set(bytes, offset);
      offset += bytes.length;
    }
  }
  return out;
}

/**
 * The events of a batch as `{ version, timestampMs, eventType,
 * contentType, data }` (BigInts, strings, a copy of the bytes), checking
 * the layout as the host checks a decided batch: for tests and the testing
 * helpers. Throws an Error naming the first problem.
 */
export function readBatch(batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const events = [];
  let offset = 0;
  while (offset < batch.byteLength) {
    if (batch.byteLength - offset < HEADER_LEN) throw new Error(malformed(offset, 'an event header is cut short'));
    const lengths = [16, 20, 24].map((at) => view.getUint32(offset + at, true));
    const start = offset + HEADER_LEN;
    const next = start + lengths[0] + lengths[1] + lengths[2];
    if (next > batch.byteLength) throw new Error(malformed(offset, "an event's lengths run past the end of the batch"));
    const eventType = nameAt(batch, start, lengths[0]);
    const contentType = nameAt(batch, start + lengths[0], lengths[1]);
    if (eventType === undefined || contentType === undefined) throw new Error(malformed(offset, 'a type name is not UTF-8'));
    events.push({
      version: view.getBigUint64(offset, true),
      timestampMs: view.getBigUint64(offset + 8, true),
      eventType,
      contentType,
      data: batch.slice(start + lengths[0] + lengths[1], next),
    });
    offset = next;
  }
  return events;
}
