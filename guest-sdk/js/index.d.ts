// Types of `@aether/guest` (src/index.js).

/** A field type: how a value is read from JSON and written back. */
export interface FieldType<T> {
  readonly describe: string;
  read(value: unknown): T;
  write(value: T): string;
  /** @internal phantom, for inference */
  readonly __type?: T;
}

/** An object of field types, e.g. `{ amount: u64, owner: string }`. */
export type Fields = { readonly [name: string]: FieldType<any> | Fields };

/** The JS value a field type (or an object of fields) reads as. */
export type Infer<F> = F extends FieldType<infer T>
  ? T
  : F extends Fields
    ? { -readonly [K in keyof F]: Infer<F[K]> }
    : never;

/** From each command or event type name to its fields, or `null` for none. */
export type Variants = { readonly [type: string]: Fields | null };

/** A command or event value: `{ type: 'Deposit', amount: 5n }`. */
export type VariantOf<V extends Variants> = {
  [K in keyof V & string]: V[K] extends Fields ? { type: K } & Infer<V[K]> : { type: K };
}[keyof V & string];

/** An event `handle` may return: optional fields may be left out. */
export type Decided<E> = E | readonly E[] | Rejection | undefined | void;

export interface AggregateOptions<S, C extends Variants, E extends Variants> {
  /** The aggregate's name, for messages. */
  name?: string;
  /** The state before any event: a function returning a new one, or a plain value that is copied. */
  initial: S | (() => S);
  /** The state's field types, for snapshots; derived from `initial` when left out. */
  state?: Fields | FieldType<S>;
  commands: C;
  events: E;
  /** Decides a command: the new events, or a thrown (or returned) `Rejection`. Must not change the state. */
  handle(state: Readonly<S>, command: VariantOf<C>): Decided<VariantOf<E>>;
  /** Folds one event into the state, by changing it or by returning the new state. */
  apply(state: S, event: VariantOf<E>): S | void;
  /** What readers see (JSON with sorted keys, BigInts as numbers); the state by default. */
  view?(state: Readonly<S>): unknown;
  /** The snapshot format's version (1–64 printable ASCII characters); derived from the state's types by default. */
  stateSchema?: string;
}

/** What `defineAggregate` returns. */
export interface AggregateDefinition<S = any, C extends Variants = Variants, E extends Variants = Variants> {
  readonly name: string;
  /** The state-schema version written into the component (`js-<hash>` unless declared). */
  readonly stateSchema: string;
  /** A new initial state. */
  initial(): S;
  /** `[eventType, JSON text]` for each decided event. */
  encodeEvents(decided: Decided<VariantOf<E>>): [string, string][];
  /** The JSON text of a command value. */
  encodeCommand(command: VariantOf<C>): string;
  /** The snapshot (JSON text) of a state. */
  snapshot(state: S): string;
  /** The view (JSON text, sorted keys) of a state. */
  view(state: S): string;
}

export function defineAggregate<S, C extends Variants, E extends Variants>(
  options: AggregateOptions<S, C, E>,
): AggregateDefinition<S, C, E>;

/** The WIT interface `aether:aggregate/handler@0.4.0` as componentize-js expects it. */
export interface Handler {
  readonly Aggregate: new (id: string) => unknown;
}

/** Makes the aggregate the component's: `export const handler = exportAggregate(MyAggregate);` */
export function exportAggregate(definition: AggregateDefinition<any, any, any>): Handler;

/** A business decision not to carry out a command. */
export class Rejection extends Error {
  constructor(code: string, message?: string);
  readonly code: string;
}

/** Data that does not decode as the expected type. */
export class WireError extends Error {}

export const CONTENT_TYPE: 'application/json';
export function isJson(contentType: string): boolean;

/** Parses JSON keeping every integer exact (beyond 2^53 as BigInt). */
export function parseLossless(text: string): unknown;
/** Compact JSON text; BigInts are written as integers; `sorted` sorts object keys. */
export function stringify(value: unknown, sorted?: boolean): string;

export const string: FieldType<string>;
export const boolean: FieldType<boolean>;
export const number: FieldType<number>;
export const int: FieldType<number>;
export const u8: FieldType<number>;
export const u16: FieldType<number>;
export const u32: FieldType<number>;
export const i8: FieldType<number>;
export const i16: FieldType<number>;
export const i32: FieldType<number>;
export const u64: FieldType<bigint>;
export const i64: FieldType<bigint>;
export const any: FieldType<unknown>;
export const U64_MAX: bigint;
export function integer(low: number, high: number, name?: string): FieldType<number>;
export function bigInteger(low: bigint, high: bigint, name: string): FieldType<bigint>;
export function oneOf<T extends string | number>(...choices: T[]): FieldType<T>;
export function optional<F extends FieldType<any> | Fields>(type: F): FieldType<Infer<F> | null>;
export function list<F extends FieldType<any> | Fields>(type: F): FieldType<Infer<F>[]>;
export function map<F extends FieldType<any> | Fields>(type: F): FieldType<Record<string, Infer<F>>>;
export function record<F extends Fields>(fields: F, name?: string): FieldType<Infer<F>>;
