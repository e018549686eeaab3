"""A cache of what was derived from SPC text, bounded by the size of that text, not by its entries.

Every rotation poll of a pod sends the same SPC text, so results derived from it (a parsed tree, a checked
object list) are worth keeping; but an SPC author chooses the text, so the cache is bounded by characters
(issue: a few large distinct texts must not pin hundreds of MB). Only entries up to `max_item` characters
are kept, all together under `budget`, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TextSizedCache(Generic[K, V]):
    """key → value, each entry weighed by the size of the text it came from."""

    def __init__(self, max_item: int, budget: int) -> None:
        self.max_item = max_item
        self.budget = budget
        self._kept: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def lookup(self, key: K) -> tuple[V] | None:
        """(value,) when kept (and now the most recently used), else None; a kept value may itself be None."""
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            self._kept.move_to_end(key)
            return (kept[0],)

    def keep(self, key: K, value: V, size: int) -> None:
        """Keep value for key when size is within max_item, evicting the least recently used over budget."""
        if size > self.max_item:
            return
        with self._lock:
            if key in self._kept:
                return
            self._kept[key] = (value, size)
            self._chars += size
            while self._chars > self.budget:
                _, (_, evicted) = self._kept.popitem(last=False)
                self._chars -= evicted

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._kept))

    @property
    def chars(self) -> int:
        """The size of the texts whose results are kept."""
        return self._chars

    def __len__(self) -> int:
        return len(self._kept)
