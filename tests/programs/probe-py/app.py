"""The probe aggregate in Python, for the host's determinism and sandbox
tests: each command reaches for the outside world through an ordinary
Python API (which CPython serves from WASI), and records what it saw.

| command                      | API                                   | outcome                                   |
|------------------------------|---------------------------------------|-------------------------------------------|
| ``Observe``                  | ``time.time_ns``, ``os.urandom``      | ``Observed {wall_clock_ms, random}``      |
| ``ReadFile {path}``          | ``open(path, "rb").read()``           | ``FileRead {bytes}`` / ``file-denied``    |
| ``ReadEnv {name}``           | ``os.environ.get``                    | ``EnvRead {name, value}`` / ``env-empty`` |
| ``OpenSocket {address}``     | ``socket.socket().connect``           | ``SocketOpened`` / ``socket-denied``      |
| ``Record {note}``            | none                                  | ``Recorded {note}``                       |

``random`` is the u64 as a decimal string. The state is ``{"notes": [...],
"observations": [...]}``; view and snapshot are its compact JSON with
sorted keys, byte for byte what the JavaScript probe writes.
"""

# Every module is imported here, while componentize-py pre-initialises the
# interpreter: the host preopens nothing, so no module (not even a codec
# such as `idna`) can be loaded from disk at run time.
import json
import os
import socket
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import handler
from wit_world.imports.types import ApplyError, NewEvent, Rejection

CONTENT_TYPE = "application/json"


def encode(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def field(data, name):
    """The string field ``name`` of the JSON object ``data``."""
    value = json.loads(data)
    value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"missing string field `{name}`")
    return value


def observe():
    return {
        "wall_clock_ms": time.time_ns() // 1_000_000,
        # Little-endian, as JavaScript's BigUint64Array reads the same bytes.
        "random": str(int.from_bytes(os.urandom(8), "little")),
    }


def read_file(path):
    try:
        with open(path, "rb") as file:
            return "FileRead", {"bytes": len(file.read())}
    except OSError as error:
        raise Err(Rejection("file-denied", f"reading {path}: {error}")) from None


def read_env(name):
    value = os.environ.get(name)
    if not value:
        raise Err(Rejection("env-empty", f"the environment variable {name} is not set"))
    return "EnvRead", {"name": name, "value": value}


def open_socket(address):
    # A plain socket and connect: socket.create_connection would stop
    # earlier, at the name lookup (wasi:sockets/ip-name-lookup), which the
    # host also refuses ("[Errno -4] Non-recoverable error").
    host, _, port = address.rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.connect((host, int(port)))
    except Exception as error:  # whatever stopped the connection is the answer
        message = f"connecting to {address}: {type(error).__name__}: {error}"
        raise Err(Rejection("socket-denied", message)) from None
    return "SocketOpened", None


COMMANDS = {
    "Observe": lambda data: ("Observed", observe()),
    "ReadFile": lambda data: read_file(field(data, "path")),
    "ReadEnv": lambda data: read_env(field(data, "name")),
    "OpenSocket": lambda data: open_socket(field(data, "address")),
    "Record": lambda data: ("Recorded", {"note": field(data, "note")}),
}


class Handler(exports.Handler):
    """The exported ``handler`` interface: it has only the resource below."""


class Aggregate(handler.Aggregate):
    def __init__(self, id: str) -> None:
        self._state = {"notes": [], "observations": []}

    def apply(self, events):
        for event in events:
            try:
                data = json.loads(bytes(event.data) or b"null")
                if event.event_type == "Recorded":
                    self._state["notes"].append(data["note"])
                elif event.event_type == "Observed":
                    self._state["observations"].append(data)
                elif event.event_type not in ("FileRead", "EnvRead", "SocketOpened"):
                    raise ValueError(f'unknown event type "{event.event_type}"')
            except (ValueError, KeyError, TypeError) as error:
                raise Err(ApplyError(event.version, f"cannot apply: {error}")) from None

    def handle(self, command):
        if command.content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
            raise Err(Rejection("unsupported-content-type", f"expected {CONTENT_TYPE}"))
        decide = COMMANDS.get(command.command_type)
        if decide is None:
            raise Err(Rejection("malformed-command", f'unknown type "{command.command_type}"'))
        data = bytes(command.data) or b"null"
        try:
            event_type, event = decide(data)
        except ValueError as error:
            message = f'invalid data for "{command.command_type}": {error}'
            raise Err(Rejection("malformed-command", message)) from None
        return [NewEvent(event_type, CONTENT_TYPE, encode(event))]

    def snapshot(self) -> bytes:
        return self.view().encode()

    def restore(self, state: bytes) -> None:
        try:
            restored = json.loads(bytes(state))
            if not (isinstance(restored.get("notes"), list)
                    and isinstance(restored.get("observations"), list)):
                raise ValueError("expected {\"notes\": [...], \"observations\": [...]}")
        except (ValueError, AttributeError) as error:
            raise Err(f"cannot restore the snapshot: {error}") from None
        self._state = {"notes": restored["notes"], "observations": restored["observations"]}

    def view(self) -> str:
        return json.dumps(self._state, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
