"""A Bloom filter over event ids: it says for certain that an id was never written to a state table.

The join looks an id up in its tables for every part it takes, and almost
every part belongs to an event the tables have never held. The filter answers
"never" for those from memory, without a query; "maybe" costs the query as
before. It only ever grows; it is rebuilt from the tables when a state file is
opened, so it needs no saving of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

BITS = 1 << 24  # 2 MiB: about 0.2% false "maybe" at a million ids, with three probes


class SeenIds:
    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._bits = bytearray(BITS >> 3)
        for event_id in ids:
            self.add(event_id)

    @staticmethod
    def _probes(event_id: str) -> tuple[int, int, int]:
        h = hash(event_id)  # salted per process: the filter is rebuilt in each one
        return h & (BITS - 1), (h >> 24) & (BITS - 1), (h >> 40) & (BITS - 1)

    def add(self, event_id: str) -> None:
        bits = self._bits
        for p in self._probes(event_id):
            bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, event_id: str) -> bool:
        """False: certainly never added; True: maybe."""
        bits = self._bits
        return all(bits[p >> 3] & (1 << (p & 7)) for p in self._probes(event_id))
