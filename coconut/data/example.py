"""One reasoning example: the unit every loader, generator and tokenizer works on."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Example:
    """A question, its reasoning steps and the answer, as in the official JSON files.

    ProsQA examples also carry their graph: `idx_to_symbol[i]` names node i, `edges`
    holds (src, dst) "src is a dst" pairs, `root` is the question's entity, `target`
    the correct concept and `neg_target` the wrong one. Other data sets leave them None.
    """

    question: str
    steps: list[str]
    answer: str
    idx_to_symbol: list[str] | None = None
    edges: list[tuple[int, int]] | None = None
    root: int | None = None
    target: int | None = None
    neg_target: int | None = None

    @property
    def has_graph(self) -> bool:
        return self.idx_to_symbol is not None
