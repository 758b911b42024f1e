"""Reading ProsQA text in the official sentence forms.

The data use exactly two edge sentence forms (checked on the official validation file:
person names are capitalised, concept names lower case, and the article is always "a",
even before a vowel: "Every gerpus is a impus."):

- ``"Every X is a Y."`` -- concept edge ``X -> Y``;
- ``"Tom is a Y."``      -- entity edge ``Tom -> Y`` (any person name).

Generated text (what a model writes after ``<|end-latent|>``) is the remaining path,
one sentence per line, then ``"### Tom is a A."``. The parser is lenient about layout:
it accepts "an", missing final dots, several sentences on one line and extra blanks,
and it looks names up case-sensitively first, then case-insensitively.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from coconut.data.prosqa_graph import Edge
from coconut.scoring import extract_answer, normalise_answer
from coconut.tokenizer.markers import EOT_TEXT, SPECIAL_TEXTS

__all__ = [
    "ParsedOutput",
    "symbol_index",
    "lookup_symbol",
    "parse_sentence_names",
    "sentence_edge",
    "split_sentences",
    "parse_output",
    "question_edge_spans",
]


_SENTENCE = re.compile(
    r"^\s*(?:(?P<every>every)\s+)?(?P<src>[^\s.]+)\s+is\s+an?\s+(?P<dst>[^\s.?]+)\s*\.?\s*$",
    re.IGNORECASE,
)
_QUESTION_SENTENCE = re.compile(r"[^.?!]*[.?!]")


def symbol_index(example) -> dict[str, int]:
    """name -> node id (the first id wins if a name is repeated)."""
    out: dict[str, int] = {}
    for i, name in enumerate(getattr(example, "idx_to_symbol", None) or ()):
        out.setdefault(str(name), i)
    return out


def lookup_symbol(name: str, example, index: dict[str, int] | None = None) -> int | None:
    """Node id of ``name``: exact match first, then case-insensitive; None if unknown."""
    index = symbol_index(example) if index is None else index
    if name in index:
        return index[name]
    folded = name.casefold()
    for sym, i in index.items():
        if sym.casefold() == folded:
            return i
    return None


def parse_sentence_names(sentence: str) -> tuple[str, str, str] | None:
    """``(src_name, dst_name, form)`` for an edge sentence, form "concept" for
    "Every X is a Y." and "entity" for "Tom is a Y."; None if it has neither form."""
    m = _SENTENCE.match(sentence)
    if m is None:
        return None
    form = "concept" if m.group("every") else "entity"
    return m.group("src"), m.group("dst"), form


def sentence_edge(sentence: str, example, index: dict[str, int] | None = None) -> Edge | None:
    """The ``(src, dst)`` node ids a sentence states, or None when the sentence is not in
    an edge form or names a symbol the example does not have. The edge need not exist
    in the graph."""
    parsed = parse_sentence_names(sentence)
    if parsed is None:
        return None
    index = symbol_index(example) if index is None else index
    s = lookup_symbol(parsed[0], example, index)
    d = lookup_symbol(parsed[1], example, index)
    if s is None or d is None:
        return None
    return (s, d)


def _clean(text: str) -> str:
    for tok in SPECIAL_TEXTS:   # marker strings a decoder may leave in the text
        text = text.replace(tok, "\n")
    return text


def split_sentences(text: str) -> list[str]:
    """Lines split on "\\n", each line further split after a "." followed by blanks;
    empty pieces dropped, each piece stripped."""
    out: list[str] = []
    for line in text.split("\n"):
        for piece in re.split(r"(?<=\.)\s+", line.strip()):
            piece = piece.strip()
            if piece:
                out.append(piece)
    return out


@dataclass
class ParsedOutput:
    """What a piece of generated text says.

    ``sentences``/``path_edges`` cover the text before the first '#': one entry per
    sentence, the edge it states, or None when the sentence is not an edge sentence or
    names an unknown symbol. ``answer_text`` follows the reference scoring rule.
    ``answer_edge`` is the edge the answer sentence states ("Tom is a A." -> (Tom, A)),
    None when it cannot be read.
    """

    sentences: list[str] = field(default_factory=list)
    path_edges: list[Edge | None] = field(default_factory=list)
    answer_text: str = ""
    has_answer_marker: bool = False
    answer_edge: Edge | None = None
    answer_correct: bool = False

    @property
    def answer_node(self) -> int | None:
        return None if self.answer_edge is None else self.answer_edge[1]

    @property
    def has_path(self) -> bool:
        return len(self.sentences) > 0

    @property
    def all_parsed(self) -> bool:
        return all(e is not None for e in self.path_edges)

    def path_nodes(self) -> list[int] | None:
        """Nodes of the written path if every sentence parsed and consecutive edges chain
        (``edges[i].dst == edges[i+1].src``); None otherwise; [] when no path."""
        if not self.all_parsed:
            return None
        if not self.path_edges:
            return []
        nodes = [self.path_edges[0][0]]
        for s, d in self.path_edges:
            if s != nodes[-1]:
                return None
            nodes.append(d)
        return nodes


def parse_output(text: str, example) -> ParsedOutput:
    """Parse generated text against ``example``'s symbols.

    ``text`` should be the continuation the model wrote after ``<|end-latent|>``; if the
    text still contains ``<|end-latent|>``, only what follows its last occurrence is read.
    Other special-token strings are treated as line breaks.
    """
    marker = EOT_TEXT
    if marker in text:
        text = text.rsplit(marker, 1)[1]
    text = _clean(text)
    has_marker = "#" in text
    path_part = text.split("#", 1)[0]
    index = symbol_index(example)
    sentences = split_sentences(path_part)
    edges = [sentence_edge(s, example, index) for s in sentences]
    answer = extract_answer(text)
    answer_edge = sentence_edge(answer, example, index) if has_marker else None
    return ParsedOutput(
        sentences=sentences,
        path_edges=edges,
        answer_text=answer,
        has_answer_marker=has_marker,
        answer_edge=answer_edge,
        answer_correct=answer == normalise_answer(str(example.answer)),
    )


def question_edge_spans(example) -> list[tuple[int, int, Edge | None]]:
    """Character spans ``(start, end, edge)`` (end exclusive) of every sentence of the
    question, with the edge it states (None for the final "Is Tom a A or B?" and any
    other non-edge sentence). Leading blanks are not part of a span. A tokenizer with
    offsets turns these into the token spans that ``attention_stats`` takes."""
    q = example.question
    index = symbol_index(example)
    out: list[tuple[int, int, Edge | None]] = []
    for m in _QUESTION_SENTENCE.finditer(q):
        raw = m.group(0)
        lead = len(raw) - len(raw.lstrip())
        start, end = m.start() + lead, m.end()
        if start >= end:
            continue
        out.append((start, end, sentence_edge(q[start:end], example, index)))
    return out
