"""ProsQA as symbols, for from-scratch CPU training (`Tokenization`, see base.py).

ProsQASymbolic: one token per node, named by the node's index in its example, so the
vocabulary is ~40 tokens (Zhu et al. 2025, "Reasoning by Superposition"):

    question  = (src dst |) per edge, in the question's sentence order, then [Q] A B [R] root
    step i    = src dst |            (the i-th edge of the reasoning path)
    answer    = [A] target eos

ProsQAEdgeTokens: the same, except that each edge of the QUESTION is a single token
standing for the pair (src, dst) (vocabulary ~1,070). Steps and answer keep node tokens.
Reading "the children of X" from the question then needs one attention step that
matches X against the edge tokens; with node tokens it needs a head that first binds
each dst to the src before it (an induction circuit), which no model trained from
scratch on this project's CPU budgets formed (docs/log/how-the-first-presets-failed.md):

    question  = e(src,dst) per edge, in the question's sentence order, then [Q] A B [R] root

`decode` renders ids back to the official sentences ("Every X is a Y.", "### Tom is a
A."), so the reference scoring rule and the path analysis read it unchanged. It never
raises: tokens it cannot place are written out as they are.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from coconut.data.prosqa_graph import answer_sentence, edge_sentence

from .markers import SPECIAL_TEXTS
from .pieces import CachedPieces, where_in

_EDGE_SENTENCE = re.compile(r"^(?:Every (?P<concept>\S+)|(?P<person>\S+)) is a (?P<dst>\S+)\.$")
_QUESTION_ENDING = re.compile(r"^Is (?P<entity>\S+) a (?P<first>\S+) or (?P<second>\S+)\?$")
_SENTENCES = re.compile(r"[^.?]+[.?]")
# The same forms for the common case, read a whole question at a time: names without
# spaces, dots or question marks, where the sentence split above cannot differ.
_NAME = r"[^\s.?]+"
_FAST_QUESTION = re.compile(rf"(?:\s*(?:Every {_NAME}|{_NAME}) is a {_NAME}\.)*\s*Is {_NAME} a {_NAME} or {_NAME}\?\s*")
_FAST_EDGES = re.compile(rf"(?:Every ({_NAME})|({_NAME})) is a ({_NAME})\.")
_FAST_ENDING = re.compile(rf"Is ({_NAME}) a ({_NAME}) or ({_NAME})\?")


class ProsQASymbolic(CachedPieces):
    """Node tokens 0..max_nodes-1 (token id = node index), then `|`, `[Q]`, `[R]`, `[A]`,
    eos, `<bot>`, `<eot>`, `<latent>`, `<pause>`."""

    kind = "prosqa_symbolic"
    renames_nodes = True

    def __init__(self, max_nodes: int = 32):
        super().__init__()
        if not isinstance(max_nodes, int) or max_nodes < 2:
            raise ValueError(f"ProsQASymbolic: max_nodes must be an integer >= 2, got {max_nodes!r}")
        self.max_nodes = max_nodes
        self.sep_id, self.question_id, self.root_id, self.answer_id = range(max_nodes, max_nodes + 4)
        self.eos_id, self.bot_id, self.eot_id, self.latent_id, self.pause_id = range(max_nodes + 4, max_nodes + 9)
        self.vocab_size = max_nodes + 9

    # -- the protocol -----------------------------------------------------------

    def decode(self, ids: Sequence[int], example=None) -> str:
        return _ProsQARenderer(self, example).render(ids)

    def edge_of(self, token: int) -> tuple[int, int] | None:
        """The (src, dst) an edge token stands for; None for every other id."""
        return None

    def node_token(self, node: int) -> int:
        """The token of node `node` (a label the frontier layout trains)."""
        if not 0 <= node < self.max_nodes:
            raise ValueError(f"{type(self).__name__}: node {node} is outside 0..{self.max_nodes - 1}")
        return node

    def node_name_ids(self, example) -> dict[int, list[int]]:
        names = example.idx_to_symbol
        if len(names) > self.max_nodes:
            raise ValueError(f"example has {len(names)} nodes, the tokenization {self.max_nodes}")
        return {i: [i] for i in range(len(names))}   # token id = node index

    def relabel_nodes(self, ids: Sequence[int], perm: Sequence[int]) -> list[int]:
        """`ids` with node i renamed perm[i] in every node and edge token: the same graph
        under other names (`shuffle_nodes`). Other ids, IGNORE labels included, pass."""
        if sorted(perm) != list(range(self.max_nodes)):
            raise ValueError(f"relabel_nodes: perm must be a permutation of 0..{self.max_nodes - 1}")
        out = []
        for t in ids:
            edge = self.edge_of(t)
            if edge is not None:
                t = self._edge_token(perm[edge[0]], perm[edge[1]])
            elif 0 <= t < self.max_nodes:
                t = perm[t]
            out.append(t)
        return out

    # -- checkpoints ------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_nodes": self.max_nodes}

    @classmethod
    def from_dict(cls, data: dict) -> "ProsQASymbolic":
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            raise ValueError(f"{cls.__name__}.from_dict: expected kind {cls.kind!r}, got {data!r:.80}")
        return cls(max_nodes=data.get("max_nodes"))

    # -- encoding ---------------------------------------------------------------

    def _node(self, index: int, example, what: str) -> int:
        if not 0 <= index < self.max_nodes:
            raise ValueError(
                f"ProsQASymbolic: {where_in(example)}: {what} is node {index}, but the "
                f"vocabulary holds nodes 0..{self.max_nodes - 1} (raise max_nodes)"
            )
        return index

    def _names_to_edge(self, sentence: str, index: dict[str, int], example, what: str) -> tuple[int, int]:
        m = _EDGE_SENTENCE.match(sentence)
        if m is None:
            raise ValueError(f"ProsQASymbolic: {where_in(example)}: {what} {sentence!r} is not an edge sentence")
        src, dst = m.group("concept") or m.group("person"), m.group("dst")
        for name in (src, dst):
            if name not in index:
                raise ValueError(f"ProsQASymbolic: {where_in(example)}: {what} names {name!r}, not in idx_to_symbol")
        return index[src], index[dst]

    def _edge_ids(self, edge: tuple[int, int], example, what: str) -> tuple[int, ...]:
        return (self._node(edge[0], example, what), self._node(edge[1], example, what), self.sep_id)

    def _question_edge_ids(self, edge: tuple[int, int], example, what: str) -> tuple[int, ...]:
        return self._edge_ids(edge, example, what)

    def _encode(self, example) -> tuple:
        return self._encode_fast(example) or self._encode_checked(example)

    def _encode_fast(self, example) -> tuple | None:
        """_encode_checked's pieces with a few regular-expression calls per example (a run
        encodes 12,000 fresh questions an epoch); None where anything is unusual, for
        _encode_checked to encode or to name what is wrong."""
        names, target = getattr(example, "idx_to_symbol", None), getattr(example, "target", None)
        if names is None or len(names) > self.max_nodes or not isinstance(target, int) \
                or not 0 <= target < self.max_nodes:
            return None
        layout = getattr(example, "layout", None)
        if layout is not None and layout.describes(example):
            # the generator's own account of the text: the same ids, nothing to parse
            question = self._question_ids(layout.question_edges) + [self.question_id, *layout.options,
                                                                    self.root_id, example.root]
            steps = tuple((a, b, self.sep_id) for a, b in zip(layout.path, layout.path[1:]))
            return tuple(question), steps, (self.answer_id, target, self.eos_id)
        if _FAST_QUESTION.fullmatch(example.question) is None:
            return None
        index = {name: i for i, name in enumerate(names)}
        try:
            edges = [(index[concept or person], index[dst])
                     for concept, person, dst in _FAST_EDGES.findall(example.question)]
            ending = [index[name] for name in _FAST_ENDING.search(example.question).groups()]
            steps = []
            for step in example.steps:
                m = _FAST_EDGES.fullmatch(step)
                if m is None:
                    return None
                steps.append((index[m.group(1) or m.group(2)], index[m.group(3)], self.sep_id))
        except KeyError:
            return None
        question = self._question_ids(edges) + [self.question_id, ending[1], ending[2], self.root_id, ending[0]]
        return tuple(question), tuple(steps), (self.answer_id, target, self.eos_id)

    def _question_ids(self, edges: list[tuple[int, int]]) -> list[int]:
        """The question's edges' ids, nodes known to be in range."""
        return [t for src, dst in edges for t in (src, dst, self.sep_id)]

    def _encode_checked(self, example) -> tuple:
        if getattr(example, "idx_to_symbol", None) is None:
            raise ValueError(f"ProsQASymbolic: {where_in(example)} has no ProsQA graph (idx_to_symbol)")
        index = {name: i for i, name in enumerate(example.idx_to_symbol)}
        sentences = [s.strip() for s in _SENTENCES.findall(example.question)]
        if not sentences or _QUESTION_ENDING.match(sentences[-1]) is None:
            raise ValueError(f"ProsQASymbolic: {where_in(example)}: question does not end 'Is X a A or B?'")
        question: list[int] = []
        for k, sentence in enumerate(sentences[:-1]):
            edge = self._names_to_edge(sentence, index, example, f"question sentence {k}")
            question += self._question_edge_ids(edge, example, f"question sentence {k}")
        ending = _QUESTION_ENDING.match(sentences[-1])
        options = []
        for group in ("first", "second", "entity"):
            name = ending.group(group)
            if name not in index:
                raise ValueError(f"ProsQASymbolic: {where_in(example)}: question names {name!r}, not in idx_to_symbol")
            options.append(self._node(index[name], example, f"question's {group} name"))
        question += [self.question_id, options[0], options[1], self.root_id, options[2]]
        steps = tuple(
            self._edge_ids(self._names_to_edge(s, index, example, f"step {i}"), example, f"step {i}")
            for i, s in enumerate(example.steps)
        )
        answer = (self.answer_id, self._node(example.target, example, "target"), self.eos_id)
        return tuple(question), steps, answer


class ProsQAEdgeTokens(ProsQASymbolic):
    """ProsQASymbolic's ids, then one token per ordered node pair: edge (src, dst) of
    the question is id `edge_base + src * max_nodes + dst`."""

    kind = "prosqa_edge_tokens"

    def __init__(self, max_nodes: int = 32):
        super().__init__(max_nodes)
        self.edge_base = self.vocab_size
        self.vocab_size = self.edge_base + max_nodes * max_nodes

    def edge_of(self, token: int) -> tuple[int, int] | None:
        offset = token - self.edge_base
        return divmod(offset, self.max_nodes) if 0 <= offset < self.max_nodes ** 2 else None

    def _edge_token(self, src: int, dst: int) -> int:
        return self.edge_base + src * self.max_nodes + dst

    def _question_edge_ids(self, edge: tuple[int, int], example, what: str) -> tuple[int, ...]:
        return (self._edge_token(*(self._node(n, example, what) for n in edge)),)

    def _question_ids(self, edges: list[tuple[int, int]]) -> list[int]:
        return [self._edge_token(src, dst) for src, dst in edges]

    def token_parts(self) -> dict[int, tuple[str, ...]]:
        """Each edge token's parts, its source and its target (`token_init: compositional`)."""
        return {self._edge_token(a, b): (f"source {a}", f"target {b}")
                for a in range(self.max_nodes) for b in range(self.max_nodes)}


class _ProsQARenderer:
    """Token stream → official sentences. Node tokens gather until a structure token
    says what they were: `|` closes an edge, `[R]` closes the two options, and so on."""

    def __init__(self, tok: ProsQASymbolic, example):
        self.tok = tok
        self.symbols = list(getattr(example, "idx_to_symbol", None) or [])
        root = getattr(example, "root", None)
        self.entity = self.name(root) if isinstance(root, int) else "<root>"
        self.out: list[str] = []
        self.pending: list[int] = []
        self.options: list[int] | None = None  # set between [R] and the root node
        self.in_answer = False

    def name(self, node: int) -> str:
        return self.symbols[node] if 0 <= node < len(self.symbols) else str(node)

    def flush(self) -> None:
        nodes, self.pending = self.pending, []
        if self.options is not None:
            options, self.options = self.options, None
            entity = self.name(nodes[0]) if nodes else "<root>"
            names = [self.name(n) for n in options] or ["?"]
            self.out.append(f"Is {entity} a {' or '.join(names)}?\n")
            nodes = nodes[1:]
        if len(nodes) == 2:
            self.out.append(edge_sentence(self.name(nodes[0]), self.name(nodes[1])) + "\n")
        elif nodes:
            self.out.append(" ".join(self.name(n) for n in nodes) + "\n")

    def render(self, ids: Iterable[int]) -> str:
        tok = self.tok
        specials = dict(zip((tok.eos_id, tok.bot_id, tok.eot_id, tok.latent_id, tok.pause_id), SPECIAL_TEXTS))
        for raw in ids:
            try:
                t = int(raw)
            except (TypeError, ValueError):
                t = -1
            pair = tok.edge_of(t)
            if pair is not None:
                self.in_answer = False
                self.flush()
                self.out.append(edge_sentence(self.name(pair[0]), self.name(pair[1])) + "\n")
                continue
            if 0 <= t < tok.max_nodes:
                if self.in_answer:
                    self.in_answer = False
                    self.out.append(answer_sentence(self.entity, self.name(t)))
                else:
                    self.pending.append(t)
                continue
            self.in_answer = False
            if t == tok.question_id:
                self.flush()
            elif t == tok.root_id:
                # What came since [Q] are the options; the root follows.
                options = self.pending
                self.pending = []
                self.flush()
                self.options = options
            elif t == tok.sep_id:
                self.flush()
            elif t == tok.answer_id:
                self.flush()
                self.out.append("### ")
                self.in_answer = True
            elif t in specials:
                self.flush()
                self.out.append(specials[t])
            else:
                self.flush()
                self.out.append(f"<unk:{raw}>")
        self.flush()
        return "".join(self.out)
