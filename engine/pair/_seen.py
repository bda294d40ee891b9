"""A Bloom filter of idempotency keys: "certainly new" in memory, "maybe seen" sends us to the database.

Finished executions leave memory once stored, yet the same idempotency key must keep finding its order. A
Bloom filter answers "never seen" for almost every new key at a few bits per key; only a "maybe" (a replay,
or a false positive at `error_rate`) costs a database lookup.
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["SeenKeys"]


class SeenKeys:
    """Bloom filter over strings (double hashing of one BLAKE2b digest)."""

    def __init__(self, capacity: int = 1_000_000, error_rate: float = 0.001) -> None:  # float-ok: a probability
        if capacity <= 0 or not 0 < error_rate < 1:
            raise ValueError("capacity > 0 and 0 < error_rate < 1 required")
        self._bits = max(64, math.ceil(-capacity * math.log(error_rate) / (math.log(2) ** 2)))
        self._hashes = max(1, round(self._bits / capacity * math.log(2)))
        self._array = bytearray((self._bits + 7) // 8)
        self.count = 0

    def _positions(self, key: str) -> list[int]:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        bits = self._bits
        # (h1 + i·h2) mod bits, stepped in small integers rather than recomputed from 64-bit ones
        pos = int.from_bytes(digest[:8], "little") % bits
        step = (int.from_bytes(digest[8:], "little") | 1) % bits
        positions = [pos]
        for _ in range(self._hashes - 1):
            pos = (pos + step) % bits
            positions.append(pos)
        return positions

    def add(self, key: str) -> None:
        """Remember `key`."""
        for pos in self._positions(key):
            self._array[pos >> 3] |= 1 << (pos & 7)
        self.count += 1

    def __contains__(self, key: str) -> bool:
        """False: certainly never added. True: probably added."""
        return all(self._array[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(key))
