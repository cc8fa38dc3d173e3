"""Just enough of the flatbuffer wire format to read a .tflite's tables with every offset
bounds-checked (validate checks a file with it, model_inspect reads its op codes)."""

from __future__ import annotations

import struct

# The file identifier at bytes 4-8 of every .tflite.
TFLITE_IDENTIFIER = b"TFL3"


class OutOfBounds(Exception):
    """A part of the flatbuffer that is out of the file's bounds or otherwise unreadable."""


class Reader:
    """Just enough of the flatbuffer wire format to bounds-check offsets."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _need(self, start: int, length: int, what: str) -> None:
        if start < 0 or start + length > len(self.data):
            raise OutOfBounds(f"{what} points to byte {start + length} of {len(self.data)}")

    def u32(self, pos: int) -> int:
        self._need(pos, 4, "an offset")
        return struct.unpack_from("<I", self.data, pos)[0]

    def table(self, pos: int, what: str = "a table") -> tuple[int, int]:
        """Return (table position, vtable position) after checking both fit the file."""
        self._need(pos, 4, what)
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        self._need(vtable, 4, f"the vtable of {what}")
        vtable_size, table_size = struct.unpack_from("<HH", self.data, vtable)
        if vtable_size < 4 or vtable_size % 2:
            raise OutOfBounds(f"the vtable of {what} has an impossible size {vtable_size}")
        self._need(vtable, vtable_size, f"the vtable of {what}")
        self._need(pos, table_size, what)
        return pos, vtable

    def field(self, table: tuple[int, int], index: int) -> int | None:
        pos, vtable = table
        slot = 4 + 2 * index
        if slot >= struct.unpack_from("<H", self.data, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return pos + offset if offset else None

    def scalar(self, table: tuple[int, int], index: int, fmt: str) -> int:
        pos = self.field(table, index)
        if pos is None:
            return 0
        self._need(pos, struct.calcsize(fmt), "a field")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def span(self, table: tuple[int, int], index: int, element_size: int) -> tuple[int, int]:
        """(first element's position, element count) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = pos + self.u32(pos)
        length = self.u32(start)
        self._need(start + 4, length * element_size, "a vector")
        return start + 4, length

    def vector(self, table: tuple[int, int], index: int, element_size: int) -> list[int]:
        """Return the element positions of a vector field (empty when absent)."""
        start, length = self.span(table, index, element_size)
        return [start + i * element_size for i in range(length)]

    def text(self, table: tuple[int, int], index: int, what: str) -> None:
        """Check that a string field (absent is fine) lies in the file and is UTF-8."""
        start, length = self.span(table, index, element_size=1)
        try:
            self.data[start : start + length].decode("utf-8")
        except UnicodeDecodeError:
            raise OutOfBounds(f"{what} is not UTF-8 text") from None

    def table_vector(self, table: tuple[int, int], index: int) -> list[tuple[int, int]]:
        return [self.table(p + self.u32(p)) for p in self.vector(table, index, element_size=4)]
