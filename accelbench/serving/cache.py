"""The server's LRU response cache, keyed by a hash of the request's canonical content.

The key is taken over the parsed inputs after conversion to the model's dtypes (so ``[1, 2]`` and
``[1.0, 2.0]`` sent to a float model are one entry), the model, version, signature and the
response format (row requests get ``predictions``, columnar ones ``outputs``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from accelbench.errors import UsageError


def request_key(
    model: str,
    version: str,
    signature: str,
    form: str,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
) -> bytes:
    """A digest of everything that decides the response."""
    digest = hashlib.blake2b(digest_size=20)
    for part in (model, version, signature, form):
        digest.update(part.encode() + b"\0")
    for name, array in zip(names, arrays, strict=True):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.digest()


class ResponseCache:
    """At most ``capacity`` response bodies, least recently used evicted first.

    Used from the event loop only, so it needs no lock. ``capacity`` 0 turns it off.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise UsageError(f"cache size must be an integer >= 0 (0 = off), got {capacity!r}")
        self.capacity = capacity
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def get(self, key: bytes) -> bytes | None:
        body = self._entries.get(key)
        if body is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return body

    def put(self, key: bytes, body: bytes) -> None:
        if not self.enabled:
            return
        self._entries[key] = body
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "capacity": self.capacity,
            "entries": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / lookups if lookups else None,
        }
