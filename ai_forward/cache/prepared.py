"""Answers built from cache entries, kept so that a hit decodes and encodes nothing.

An answer is kept per entry key and form (streamed or not, with usage or not) next to
the stored value it was built from. The backend still decides every hit (expiry, LRU,
`clear`): a kept answer is used only while the backend gives the very value it was
built from (the same object for the memory backend, equal bytes for the others).
Bounded by MAX_BYTES, least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..exchange import LocalAnswer
from .key import Lookup

MAX_BYTES = 16 * 1024 * 1024

Form = Lookup  # key, streamed, usage


@dataclass(frozen=True, slots=True)
class Prepared:
    value: bytes
    answer: LocalAnswer
    size: int


class PreparedAnswers:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_one = max_bytes // 16  # an answer from a bigger entry is built at each hit
        self.size = 0
        self._kept: OrderedDict[Form, Prepared] = OrderedDict()

    def get(self, form: Form, value: bytes) -> LocalAnswer | None:
        """The answer built from `value` in this form, if kept."""
        kept = self._kept.get(form)
        if kept is None:
            return None
        if kept.value is not value and kept.value != value:  # the entry was made anew
            self._remove(form)
            return None
        self._kept.move_to_end(form)
        return kept.answer

    def put(self, form: Form, value: bytes, answer: LocalAnswer) -> None:
        # The stored value is kept alive with the answer: both count.
        size = len(value) + len(answer.body)
        if size > self.max_one:
            return
        self._remove(form)
        self._kept[form] = Prepared(value, answer, size)
        self.size += size
        while self.size > self.max_bytes:
            _, oldest = self._kept.popitem(last=False)
            self.size -= oldest.size

    def _remove(self, form: Form) -> None:
        kept = self._kept.pop(form, None)
        if kept is not None:
            self.size -= kept.size
