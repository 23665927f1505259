"""The batch ``apply`` receives for a replay (``aether:aggregate@0.4.0``,
as in 0.2.0 and 0.3.0), and ``execute`` hands back: events one after
another, each a 28-byte little-endian header (version u64, timestamp-ms
u64, then the u32 lengths of its event type, content type and data)
followed by those three byte strings. The layout
is specified on ``apply`` in ``wit/aggregate.wit``.

The apply loop (``_component``) reads the batch in place: a run of events
in canonical form (see ``_codec._canonical``) is read with one
regular-expression ``findall`` over the batch (header, names and data of
each event at once); any other event with one ``struct`` call for the
lengths, the names compared as bytes, the data matched or parsed from a
slice. The host guarantees the layout; a batch that breaks it (a
host bug) is reported as an ``apply-error``, as the Rust SDK does, rather
than read past its end.
"""

from __future__ import annotations

import struct

#: Bytes of the fixed header in front of each event.
HEADER_LEN = 28
_HEADER = struct.Struct("<QQIII")
#: ``LENGTHS(batch, offset)``: the lengths of an event's type, content type and data.
LENGTHS = struct.Struct("<16xIII").unpack_from
_VERSION = struct.Struct("<Q").unpack_from


def version_at(batch, offset: int) -> int:
    """The version in the header at ``offset``."""
    return _VERSION(batch, offset)[0]


def skip(batch, offset: int, count: int):
    """``(start, end)`` of the ``count``-th event (one or more) from
    ``offset``, which starts an event; for events already read whole."""
    start = offset
    for _ in range(count):
        start = offset
        type_len, content_len, data_len = LENGTHS(batch, offset)
        offset += HEADER_LEN + type_len + content_len + data_len
    return start, offset


def malformed(batch, previous: int, offset: int, reason: str):
    """``(version, message)`` of the apply-error for a batch that breaks the
    layout at ``offset``: the version after the event read before it (at
    ``previous``, or -1 for none)."""
    version = 1 if previous < 0 else version_at(batch, previous) + 1
    return version, f"the host sent a malformed batch (byte {offset}): {reason}"


def event_head(event_type: str, content_type: str):
    """``(pack, type_len, content_len, names)`` for events of this type and
    content type: ``pack(version, timestamp_ms, type_len, content_len,
    data_len, names)`` is an event's header followed by its two names, in
    the batch layout (what ``execute`` writes in front of the event's
    data)."""
    type_name, content_name = event_type.encode(), content_type.encode()
    names = type_name + content_name
    pack = struct.Struct(f"<QQIII{len(names)}s").pack
    return pack, len(type_name), len(content_name), names


def read_batch(batch) -> list:
    """``(version, event_type, content_type, data, timestamp_ms)`` tuples of
    a well-formed batch (the inverse of :func:`write_batch`), checking the
    layout as the host does: for tests and the testing helpers."""
    events, offset = [], 0
    while offset < len(batch):
        if len(batch) - offset < HEADER_LEN:
            raise ValueError(f"a header cut short at byte {offset} of {len(batch)}")
        version, timestamp_ms, type_len, content_len, data_len = _HEADER.unpack_from(batch, offset)
        start = offset + HEADER_LEN
        end = start + type_len + content_len + data_len
        if end > len(batch):
            raise ValueError(f"the event at byte {offset} runs past the end ({len(batch)})")
        names = bytes(batch[start : start + type_len + content_len])
        data = bytes(batch[start + type_len + content_len : end])
        event_type, content_type = names[:type_len].decode(), names[type_len:].decode()
        events.append((version, event_type, content_type, data, timestamp_ms))
        offset = end
    return events


def write_batch(events) -> bytes:
    """A batch as the host writes it, from ``(version, event_type,
    content_type, data, timestamp_ms)`` tuples: for tests and the testing
    helpers."""
    out = bytearray()
    for version, event_type, content_type, data, timestamp_ms in events:
        names = event_type.encode(), content_type.encode()
        out += _HEADER.pack(version, timestamp_ms, len(names[0]), len(names[1]), len(data))
        out += names[0] + names[1] + data
    return bytes(out)
