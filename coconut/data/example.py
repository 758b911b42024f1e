"""One reasoning example: the unit every loader, generator and tokenizer works on."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Example:
    """A question, its reasoning steps and the answer, as in the official JSON files.

    ProsQA examples also carry their graph: `idx_to_symbol[i]` names node i, `edges`
    holds (src, dst) "src is a dst" pairs, `root` is the question's entity, `target`
    the correct concept and `neg_target` the wrong one. Other data sets leave them None.
    Generated ProsQA examples also carry their `layout` (ProsQALayout).
    """

    question: str
    steps: list[str]
    answer: str
    idx_to_symbol: list[str] | None = None
    edges: list[tuple[int, int]] | None = None
    root: int | None = None
    target: int | None = None
    neg_target: int | None = None
    layout: ProsQALayout | None = field(default=None, compare=False, repr=False)

    @property
    def has_graph(self) -> bool:
        return self.idx_to_symbol is not None


@dataclass(frozen=True)
class ProsQALayout:
    """How the generator wrote a ProsQA question: its edges in sentence order, its two
    options in the order asked and its reasoning path's nodes, with the text and names
    they were written as. The symbolic tokenizers take the ids from it instead of
    parsing the text back (12,000 fresh questions an epoch), where the example still
    has that text and those names: an edited example is read from its text."""

    question_edges: list[tuple[int, int]]
    options: tuple[int, int]
    path: list[int]
    question: str
    steps: tuple[str, ...]
    names: tuple[str, ...]

    def describes(self, example: Example) -> bool:
        return (example.question == self.question and tuple(example.steps) == self.steps
                and example.idx_to_symbol is not None and tuple(example.idx_to_symbol) == self.names)
