// The probe aggregate in JavaScript, for the host's determinism and sandbox
// tests: the same commands, events and rejections as tests/programs/probe-py,
// each reaching for the outside world through the JS runtime's own APIs.
//
// | command                | API                                  | outcome                                 |
// |------------------------|--------------------------------------|-----------------------------------------|
// | `Observe`              | `Date.now`, `crypto.getRandomValues` | `Observed {wall_clock_ms, random}`      |
// | `ReadFile {path}`      | `fs.readFileSync`, if there is one   | `FileRead {bytes}` / `file-denied`      |
// | `ReadEnv {name}`       | `process.env`, if there is one       | `EnvRead {name, value}` / `env-empty`   |
// | `OpenSocket {address}` | none exists                          | `socket-denied`                         |
// | `Record {note}`        | none                                 | `Recorded {note}`                       |
//
// componentize-js 0.23 runs StarlingMonkey, a web-style runtime: it has no
// `process`, no `require`, no `fs` and no socket API, so ReadFile, ReadEnv
// and OpenSocket are always rejected, saying so. (Its `fetch` would need
// wasi:http, which the build disables: calling it traps.) `random` is the
// u64 as a decimal string. The state is `{"notes": [...], "observations":
// [...]}`; view and snapshot are its compact JSON with sorted keys.

const CONTENT_TYPE = 'application/json';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The `err` side of a WIT `result`. */
class Err {
  constructor(payload) {
    this.payload = payload;
  }
}

const reject = (code, message) => {
  throw new Err({ code, message });
};

/** Compact JSON with object keys sorted, as Python's `json.dumps(sort_keys=True)` writes it. */
function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${sortedJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const parse = (bytes) => JSON.parse(decoder.decode(bytes) || 'null');

/** The string field `name` of the JSON object `data`. */
function field(data, name) {
  const value = parse(data)?.[name];
  if (typeof value !== 'string') throw new TypeError(`missing string field \`${name}\``);
  return value;
}

function observe() {
  return {
    wall_clock_ms: Date.now(),
    random: crypto.getRandomValues(new BigUint64Array(1))[0].toString(),
  };
}

function readFile(path) {
  const fs = globalThis.process?.getBuiltinModule?.('node:fs');
  if (!fs) reject('file-denied', `reading ${path}: this JavaScript runtime has no file API`);
  try {
    return ['FileRead', { bytes: fs.readFileSync(path).length }];
  } catch (error) {
    return reject('file-denied', `reading ${path}: ${error.message}`);
  }
}

function readEnv(name) {
  const env = globalThis.process?.env;
  if (!env) reject('env-empty', `the environment variable ${name} is not set: this JavaScript runtime has no process.env`);
  if (!env[name]) reject('env-empty', `the environment variable ${name} is not set`);
  return ['EnvRead', { name, value: env[name] }];
}

function openSocket(address) {
  reject('socket-denied', `connecting to ${address}: this JavaScript runtime has no socket API`);
}

const COMMANDS = {
  Observe: () => ['Observed', observe()],
  ReadFile: (data) => readFile(field(data, 'path')),
  ReadEnv: (data) => readEnv(field(data, 'name')),
  OpenSocket: (data) => openSocket(field(data, 'address')),
  Record: (data) => ['Recorded', { note: field(data, 'note') }],
};

const IGNORED_EVENTS = ['FileRead', 'EnvRead', 'SocketOpened'];

/** One live aggregate: its state stays in guest memory between calls. */
class Aggregate {
  #state = { notes: [], observations: [] };

  constructor(_id) {}

  apply(events) {
    for (const event of events) {
      try {
        const data = parse(event.data);
        if (event.eventType === 'Recorded') {
          if (typeof data?.note !== 'string') throw new TypeError('missing string field `note`');
          this.#state.notes.push(data.note);
        } else if (event.eventType === 'Observed') {
          this.#state.observations.push(data);
        } else if (!IGNORED_EVENTS.includes(event.eventType)) {
          throw new TypeError(`unknown event type "${event.eventType}"`);
        }
      } catch (error) {
        if (error instanceof Err) throw error;
        throw new Err({ version: event.version, message: `cannot apply: ${error.message}` });
      }
    }
  }

  handle(command) {
    if (command.contentType.split(';')[0].trim().toLowerCase() !== CONTENT_TYPE) {
      reject('unsupported-content-type', `expected ${CONTENT_TYPE}`);
    }
    const decide = Object.hasOwn(COMMANDS, command.commandType) ? COMMANDS[command.commandType] : null;
    if (!decide) reject('malformed-command', `unknown type "${command.commandType}"`);
    let eventType, event;
    try {
      [eventType, event] = decide(command.data);
    } catch (error) {
      if (error instanceof Err) throw error;
      reject('malformed-command', `invalid data for "${command.commandType}": ${error.message}`);
    }
    return [{ eventType, contentType: CONTENT_TYPE, data: encoder.encode(JSON.stringify(event ?? null)) }];
  }

  snapshot() {
    return encoder.encode(this.view());
  }

  restore(bytes) {
    let restored;
    try {
      restored = parse(bytes);
    } catch (error) {
      throw new Err(`cannot restore the snapshot: ${error.message}`);
    }
    if (!Array.isArray(restored?.notes) || !Array.isArray(restored?.observations)) {
      throw new Err('cannot restore the snapshot: expected {"notes": [...], "observations": [...]}');
    }
    this.#state = { notes: restored.notes, observations: restored.observations };
  }

  view() {
    return sortedJson(this.#state);
  }
}

/** The exported interface `aether:aggregate/handler@0.1.0`. */
export const handler = { Aggregate };
