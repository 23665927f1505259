"""``python -m aether_guest state-schema MODULE``: prints the state-schema
version of the aggregate MODULE exports (run by the build, which writes it
into the component's ``aether:state-schema`` custom section)."""

import importlib
import sys

from ._aggregate import spec_of
from ._component import EXPORTED

USAGE = "usage: python -m aether_guest state-schema MODULE"


def main(argv) -> int:
    if len(argv) != 2 or argv[0] != "state-schema":
        print(USAGE, file=sys.stderr)
        return 2
    importlib.import_module(argv[1])
    if len(EXPORTED) != 1:
        print(
            f"{argv[1]} must call aether_guest.export(...) exactly once "
            f"(found {len(EXPORTED)} exported aggregates)",
            file=sys.stderr,
        )
        return 1
    print(spec_of(EXPORTED[0]).state_schema)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
