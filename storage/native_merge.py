"""Many Native blocks of steps as one: what the writer inserts.

ClickHouse pays a fixed cost to read each Native block whatever its size (each column's type
and serialization are set up anew), so a commit of 22 requests' blocks of 512 spans reads in
about twice the time of the same rows in one block (docs/performance.md).  The mapping workers
encode one request each, so the writer joins their blocks column by column: fixed-size and
``String`` data are concatenated, array offsets shifted, and each ``LowCardinality``
dictionary is merged with its indexes renumbered (``bytes.translate``, or numpy past 255 values).  It needs to know where each
column's data lies in a block, which the encoder records (:func:`~.native.encode_steps`).

Only the column types of the ``steps`` insert are handled (:data:`MERGERS`); the layouts are
those of ClickHouse's Native format as clickhouse-connect writes it (a ``LowCardinality``
column: the version prefix, then flags, dictionary size and values, then row count and
indexes; nothing at all for no rows; inside an array or a map, the prefix comes first).
"""

from __future__ import annotations

from math import log

import numpy as np

_U64 = np.dtype("<u8")
_LC_VERSION = (1).to_bytes(8, "little")
_LC_FLAGS = (1 << 9) | (1 << 10)  # has additional keys, update dictionary: as clickhouse-connect writes
_INDEX_TYPES = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))


class _Reader:
    """A cursor over one column's bytes."""

    __slots__ = ("data", "at")

    def __init__(self, data: memoryview):
        self.data, self.at = data, 0

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def take(self, size: int) -> memoryview:
        part = self.data[self.at:self.at + size]
        if len(part) != size:
            raise ValueError("a Native column ended early")
        self.at += size
        return part

    def strings(self, count: int) -> list[bytes]:
        """``count`` length-prefixed strings, each as bytes."""
        data, at, out = self.data, self.at, []
        for _ in range(count):
            size = shift = 0
            while True:
                byte = data[at]
                at += 1
                size |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            out.append(bytes(data[at:at + size]))
            at += size
        if at > len(data):
            raise ValueError("a Native column ended early")
        self.at = at
        return out

    def skip_strings(self, count: int) -> memoryview:
        start = self.at
        self.strings(count)
        return self.data[start:self.at]

    def rest(self) -> memoryview:
        part = self.data[self.at:]
        self.at = len(self.data)
        return part


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(0x80 | byte)


def _offsets(readers: list[_Reader], counts: list[int]) -> tuple[list, list[int]]:
    """Each reader's next ``counts[i]`` array offsets, shifted to follow the earlier readers'
    elements; also how many elements each reader's arrays hold."""
    parts, sizes, base = [], [], 0
    for reader, count in zip(readers, counts):
        offsets = np.frombuffer(reader.take(count * 8), dtype=_U64)
        size = int(offsets[-1]) if count else 0
        parts.append(offsets + np.uint64(base) if base else offsets)
        sizes.append(size)
        base += size
    return parts, sizes


def _low_cardinality(readers: list[_Reader], counts: list[int]) -> list:
    """The ``LowCardinality(String)`` data (without its version prefix) of ``counts[i]`` values
    from each reader, as one dictionary and one index array."""
    merged: dict[bytes, int] = {}
    blocks = []  # (index bytes, index width, merged id of each of the block's keys)
    for reader, count in zip(readers, counts):
        if not count:
            continue  # clickhouse-connect writes nothing for no values
        width = reader.u64() & 0xFF
        keys = reader.strings(reader.u64())
        if reader.u64() != count:
            raise ValueError("a LowCardinality column's row count does not match its block")
        ids = [merged.setdefault(key, len(merged)) for key in keys]
        blocks.append((reader.take(count << width), width, ids))
    if not blocks:
        return []
    width = int(log(len(merged), 2)) >> 3  # as clickhouse-connect sizes its index
    out = bytearray((_LC_FLAGS | width).to_bytes(8, "little"))
    out += len(merged).to_bytes(8, "little")
    for key in merged:
        out += _leb128(len(key))
        out += key
    out += sum(counts).to_bytes(8, "little")
    if width == 0 and not any(w for _, w, _ in blocks):  # under 256 values (usual): one byte each
        return [out, *(bytes(index).translate(bytes(ids).ljust(256, b"\0")) for index, _, ids in blocks)]
    return [out, *(np.array(ids, dtype=np.uint64)[np.frombuffer(index, dtype=_INDEX_TYPES[w])].astype(_INDEX_TYPES[width])
                   for index, w, ids in blocks)]


def _concatenated(readers, rows):
    return [reader.rest() for reader in readers]


def _fixed_size(size: int):
    def merge(readers, rows):
        if any(len(reader.data) != count * size for reader, count in zip(readers, rows)):
            raise ValueError(f"a column of {size}-byte values does not hold one per row")
        return _concatenated(readers, rows)
    return merge


def _nullable(readers, rows):
    nulls = [reader.take(count) for reader, count in zip(readers, rows)]
    return nulls + [reader.rest() for reader in readers]


def _lc(readers, rows):
    for reader, count in zip(readers, rows):
        if count and reader.take(8) != _LC_VERSION:
            raise ValueError("unknown LowCardinality serialization version")
    return [_LC_VERSION, *_low_cardinality(readers, rows)]


def _array(readers, rows):
    offsets, _ = _offsets(readers, rows)
    return offsets + [reader.rest() for reader in readers]


def _array_of_lc(readers, rows):
    for reader, count in zip(readers, rows):
        if count and reader.take(8) != _LC_VERSION:
            raise ValueError("unknown LowCardinality serialization version")
    offsets, sizes = _offsets(readers, rows)
    return [_LC_VERSION, *offsets, *_low_cardinality(readers, sizes)]


def _map_lc_string(readers, rows, depth: int = 1):
    for reader, count in zip(readers, rows):
        if count and reader.take(8) != _LC_VERSION:
            raise ValueError("unknown LowCardinality serialization version")
    out, counts = [_LC_VERSION], rows
    for _ in range(depth):  # an Array(Map(…)) has the outer offsets first, then the map's
        offsets, counts = _offsets(readers, counts)
        out += offsets
    out += _low_cardinality(readers, counts)
    return out + [reader.rest() for reader in readers]


def _map_string_string(readers, rows):
    offsets, sizes = _offsets(readers, rows)
    keys = [reader.skip_strings(size) for reader, size in zip(readers, sizes)]
    return offsets + keys + [reader.rest() for reader in readers]


MERGERS = {
    "String": _concatenated, "UInt8": _fixed_size(1), "UInt64": _fixed_size(8),
    "DateTime64(3, 'UTC')": _fixed_size(8), "DateTime64(9, 'UTC')": _fixed_size(8),
    "Nullable(Float64)": _nullable,
    "LowCardinality(String)": _lc,
    "Array(String)": _array, "Array(DateTime64(9, 'UTC'))": _array,
    "Array(LowCardinality(String))": _array_of_lc,
    "Map(LowCardinality(String), String)": _map_lc_string,
    "Array(Map(LowCardinality(String), String))": lambda readers, rows: _map_lc_string(readers, rows, depth=2),
    "Map(String, String)": _map_string_string,
}
"""How to join one column of each type (the types of the ``steps`` insert): each returns the
merged column as a list of buffers, joined once at the end."""


def merge_blocks(blocks: list[tuple[bytes, list[tuple[int, int]], int]],
                 columns: list[tuple[str, str]]) -> bytes:
    """One Native block of ``columns`` (name, type) holding every row of ``blocks``.

    A block is given as its bytes, the (start, end) of each column's data in them, and its
    row count.
    """
    rows = [count for _, _, count in blocks]
    out = [_leb128(len(columns)), _leb128(sum(rows))]
    views = [(memoryview(data), spans) for data, spans, _ in blocks]
    if any(len(spans) != len(columns) or spans[-1][1] != len(view) for view, spans in views):
        raise ValueError("a block's column spans do not match its columns or its length")
    for i, (name, type_) in enumerate(columns):
        readers = [_Reader(view[spans[i][0]:spans[i][1]]) for view, spans in views]
        for text in (name, type_):
            encoded = text.encode()
            out += (_leb128(len(encoded)), encoded)
        out += MERGERS[type_](readers, rows)
        if any(reader.at != len(reader.data) for reader in readers):
            raise ValueError(f"column {name} of a block was not read to its end")
    return b"".join(out)
