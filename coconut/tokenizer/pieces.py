"""The cached piece encodings every tokenization shares: the curriculum lays every
example out again each epoch, so each example is encoded once into (question, steps,
answer) and the protocol methods read from that."""
from __future__ import annotations

from coconut.forked import map_spans
from coconut.tokenizer.base import Tokenization


class CachedPieces(Tokenization):
    """Subclasses define `_encode(example) -> (question ids, tuple of step ids, answer ids)`."""

    def __init__(self):
        # id(example) -> (example, pieces); the example is kept so that its id cannot be
        # reused by another object while the entry lives
        self._entries: dict[int, tuple] = {}

    def _pieces(self, example) -> tuple:
        entry = self._entries.get(id(example))
        if entry is None or entry[0] is not example:
            entry = (example, self._encode(example))
            self._entries[id(example)] = entry
        return entry[1]

    def _encode(self, example) -> tuple:
        raise NotImplementedError

    def encode_all(self, examples, workers: int = 1) -> None:
        """Encodes and caches every example not cached yet, on up to `workers` forked
        processes (`_encode` is pure: the same pieces in any process). An example that
        fails stays uncached: its error comes when it is next used, where the caller
        (e.g. the trainer's length check) can name the data set and the example."""
        todo, seen = [], set()
        for ex in examples:
            entry = self._entries.get(id(ex))
            if (entry is None or entry[0] is not ex) and id(ex) not in seen:
                todo.append(ex)
                seen.add(id(ex))
        def encode(ex):
            try:
                return self._encode(ex)
            except ValueError:
                return None
        parts = map_spans(lambda lo, hi: [encode(ex) for ex in todo[lo:hi]], len(todo), workers)
        for ex, pieces in zip(todo, (p for part in parts for p in part)):
            if pieces is not None:
                self._entries[id(ex)] = (ex, pieces)

    def question_ids(self, example) -> list[int]:
        return list(self._pieces(example)[0])

    def step_ids(self, example, index: int) -> list[int]:
        return list(self._pieces(example)[1][index])

    def answer_ids(self, example) -> list[int]:
        return list(self._pieces(example)[2])

    def n_steps(self, example) -> int:
        return len(self._pieces(example)[1])

    def clear_cache(self) -> None:
        self._entries.clear()


def where_in(example) -> str:
    """How an error names the example it met: its question's start."""
    return f"example (question {example.question[:60]!r}...)"
