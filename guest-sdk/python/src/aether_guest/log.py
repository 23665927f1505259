"""Writing to the host's log (WIT ``aether:aggregate/log``).

In a component each line goes to the host, tagged with the namespace,
aggregate type and component digest; under plain CPython (tests) it goes to
the standard :mod:`logging` module, logger ``aether_guest``.
"""

from __future__ import annotations

import logging

try:
    from wit_world.imports import log as _wit_log
except ImportError:  # plain CPython
    _wit_log = None

_fallback = logging.getLogger("aether_guest")


def _writer(level_name: str, python_level: int):
    if _wit_log is not None:
        level = getattr(_wit_log.Level, level_name.upper())

        def write(message: str) -> None:
            _wit_log.log(level, str(message))

    else:

        def write(message: str) -> None:
            _fallback.log(python_level, "%s", message)

    write.__name__ = level_name
    write.__doc__ = f"Logs ``message`` at level {level_name}."
    return write


trace = _writer("trace", 5)
debug = _writer("debug", logging.DEBUG)
info = _writer("info", logging.INFO)
warn = _writer("warn", logging.WARNING)
error = _writer("error", logging.ERROR)

__all__ = ["trace", "debug", "info", "warn", "error"]
