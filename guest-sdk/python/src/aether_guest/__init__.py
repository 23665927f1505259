"""Aether guest SDK for Python: write an event-sourced aggregate as a
dataclass with ``handle`` and ``apply``, and build it into a WebAssembly
component with componentize-py.

.. code-block:: python

    from dataclasses import dataclass
    from aether_guest import Aggregate, Rejection, export, u64

    @dataclass
    class Add:
        amount: u64

    @dataclass
    class Added:
        amount: u64

    @dataclass
    class Counter(Aggregate):
        value: u64 = 0

        def handle(self, command: Add) -> list[Added]:
            if command.amount == 0:
                raise Rejection("invalid-amount", "add more than 0")
            return [Added(command.amount)]

        def apply(self, event: Added) -> None:
            self.value += event.amount

    export(Counter)

Wire format (docs/guest-languages.md states it for every language): a
command or event crosses the boundary as its class name, the content type
``application/json`` and the compact JSON of its fields in declaration
order (``null`` for a class without fields). Snapshots are the JSON of the
state's fields; ``view`` is the same with sorted keys.
"""

from . import log
from ._aggregate import CONTENT_TYPE, Aggregate, Rejection, derived_schema, type_name
from ._codec import IntRange, WireError, i8, i16, i32, i64, u8, u16, u32, u64
from ._component import export

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "Rejection",
    "export",
    "log",
    "CONTENT_TYPE",
    "WireError",
    "IntRange",
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "type_name",
    "derived_schema",
]
