// Types of `@aether/guest/testing` (src/testing.js).

import type { AggregateDefinition, Handler } from './index.js';

type Aggregate = AggregateDefinition<any, any, any> | Handler;
type Data = string | Uint8Array | unknown;

/** An aggregate after its given events; each `when` runs on a fresh copy. */
export interface Given {
  when(command: { type: string; [field: string]: unknown }): Then;
  whenRaw(commandType: string, data: Data, contentType?: string): Then;
}

type NewEvent = { eventType: string; contentType: string; data: Uint8Array };

/** The outcome of one command (`execute` has applied its events); each assertion returns `this`. */
export interface Then {
  /** `{ ok: the new events }` or `{ err: the rejection }`. */
  readonly outcome: { ok?: NewEvent[]; err?: { code: string; message: string } };
  /** What `execute` returned when it decided events (the WIT `decision`'s `events` case, a batch); undefined on a rejection. */
  readonly decision?: { tag: 'events'; val: Uint8Array };
  /** The resource after the command (its `state`, `view()`, `snapshot()`). */
  readonly resource: any;
  /** The decided events as `{ type, data }`, the data parsed losslessly. */
  readonly rawEvents: { type: string; data: unknown }[];
  thenEvents(...expected: { type: string; [field: string]: unknown }[]): Then;
  thenRejected(code: string, message?: string): Then;
  thenState(expected: unknown | ((state: any) => unknown)): Then;
  thenView(expected: unknown): Then;
}

export function given(aggregate: Aggregate, ...events: { type: string; [field: string]: unknown }[]): Given;
export function givenRaw(aggregate: Aggregate, events: [eventType: string, data: Data, contentType?: string][]): Given;
export function givenState(aggregate: Aggregate, state: unknown): Given;
/** One `node:test` test per `*.json` conformance scenario in `directory`. */
export function testScenarios(aggregate: Aggregate, directory: string | URL): void;
/** A batch as the host passes it to `apply` (aether:aggregate@0.4.0), from events with versions and timestamps as BigInts or Numbers. */
export function writeBatch(
  events: { version: bigint | number; eventType: string; contentType?: string; data?: Uint8Array; timestampMs?: bigint | number }[],
): Uint8Array;
/** The events of a batch (the layout checked as the host checks a decided batch; throws on the first problem). */
export function readBatch(
  batch: Uint8Array,
): { version: bigint; timestampMs: bigint; eventType: string; contentType: string; data: Uint8Array }[];
