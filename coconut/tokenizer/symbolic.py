"""Symbolic tokenizations for from-scratch CPU training (`Tokenization`, see base.py).

ProsQASymbolic: one token per node, named by the node's index in its example, so the
vocabulary is ~40 tokens (Zhu et al. 2025, "Reasoning by Superposition"):

    question  = (src dst |) per edge, in the question's sentence order, then [Q] A B [R] root
    step i    = src dst |            (the i-th edge of the reasoning path)
    answer    = [A] target eos

ProsQAEdgeTokens: the same, except that each edge of the QUESTION is a single token
standing for the pair (src, dst) (vocabulary ~1,070). Steps and answer keep node tokens.
Reading "the children of X" from the question then needs one attention step that matches
X against the edge tokens; with node tokens it needs a head that first binds each dst to
the src before it (an induction circuit), which models trained from scratch on a CPU
budget did not form (no head attended to the previous token; docs/reproduction.md):

    question  = e(src,dst) per edge, in the question's sentence order, then [Q] A B [R] root

ProntoQASymbolic: one token per word or punctuation mark, vocabulary built from data:

    question  = words of the question, then a newline token
    step i    = words of steps[i], then a newline token
    answer    = ### True|False eos

ProntoQAFactTokens: the same, except that each fact sentence of the QUESTION is a single
token standing for (subject, negated, object), for the reason edge tokens exist.
ProntoQAFactSteps writes every sentence, steps and query included, as a (subject,
object) token and the word "is" or "not"; ProntoQAFactSentences as one (subject,
negated, object) token.

`decode` renders ids back to the official sentence forms ("Every X is a Y.", "### Tom is
a A.", "### True"; ProntoQAFactTokens' question facts in one canonical wording), so the
reference scoring rule and the ProsQA path analysis read it unchanged. It never raises:
tokens it cannot place are written out as they are.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from coconut.data.prosqa_graph import answer_sentence, edge_sentence

from .pieces import CachedPieces

# The same marker strings the GPT-2 tokenization decodes to, so text from either
# tokenization goes through the same scoring and analysis code.
EOS_TEXT = "<|endoftext|>"
BOT_TEXT = "<|start-latent|>"
EOT_TEXT = "<|end-latent|>"
LATENT_TEXT = "<|latent|>"
PAUSE_TEXT = "<pause>"
SPECIAL_TEXTS = (EOS_TEXT, BOT_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT)


def _symbol_where(example) -> str:
    return f"example (question {example.question[:60]!r}...)"


# --------------------------------------------------------------------------- ProsQA

_EDGE_SENTENCE = re.compile(r"^(?:Every (?P<concept>\S+)|(?P<person>\S+)) is a (?P<dst>\S+)\.$")
_QUESTION_ENDING = re.compile(r"^Is (?P<entity>\S+) a (?P<first>\S+) or (?P<second>\S+)\?$")
_SENTENCES = re.compile(r"[^.?]+[.?]")



class ProsQASymbolic(CachedPieces):
    """Node tokens 0..max_nodes-1 (token id = node index), then `|`, `[Q]`, `[R]`, `[A]`,
    eos, `<bot>`, `<eot>`, `<latent>`, `<pause>`."""

    KIND = "prosqa_symbolic"

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
        return {"kind": self.KIND, "max_nodes": self.max_nodes}

    @classmethod
    def from_dict(cls, data: dict) -> "ProsQASymbolic":
        if not isinstance(data, dict) or data.get("kind") != cls.KIND:
            raise ValueError(f"{cls.__name__}.from_dict: expected kind {cls.KIND!r}, got {data!r:.80}")
        return cls(max_nodes=data.get("max_nodes"))

    # -- encoding ---------------------------------------------------------------

    def _node(self, index: int, example, what: str) -> int:
        if not 0 <= index < self.max_nodes:
            raise ValueError(
                f"ProsQASymbolic: {_symbol_where(example)}: {what} is node {index}, but the "
                f"vocabulary holds nodes 0..{self.max_nodes - 1} (raise max_nodes)"
            )
        return index

    def _names_to_edge(self, sentence: str, index: dict[str, int], example, what: str) -> tuple[int, int]:
        m = _EDGE_SENTENCE.match(sentence)
        if m is None:
            raise ValueError(f"ProsQASymbolic: {_symbol_where(example)}: {what} {sentence!r} is not an edge sentence")
        src, dst = m.group("concept") or m.group("person"), m.group("dst")
        for name in (src, dst):
            if name not in index:
                raise ValueError(f"ProsQASymbolic: {_symbol_where(example)}: {what} names {name!r}, not in idx_to_symbol")
        return index[src], index[dst]

    def _edge_ids(self, edge: tuple[int, int], example, what: str) -> tuple[int, ...]:
        return (self._node(edge[0], example, what), self._node(edge[1], example, what), self.sep_id)

    def _question_edge_ids(self, edge: tuple[int, int], example, what: str) -> tuple[int, ...]:
        return self._edge_ids(edge, example, what)

    def _encode(self, example) -> tuple:
        if getattr(example, "idx_to_symbol", None) is None:
            raise ValueError(f"ProsQASymbolic: {_symbol_where(example)} has no ProsQA graph (idx_to_symbol)")
        index = {name: i for i, name in enumerate(example.idx_to_symbol)}
        sentences = [s.strip() for s in _SENTENCES.findall(example.question)]
        if not sentences or _QUESTION_ENDING.match(sentences[-1]) is None:
            raise ValueError(f"ProsQASymbolic: {_symbol_where(example)}: question does not end 'Is X a A or B?'")
        question: list[int] = []
        for k, sentence in enumerate(sentences[:-1]):
            edge = self._names_to_edge(sentence, index, example, f"question sentence {k}")
            question += self._question_edge_ids(edge, example, f"question sentence {k}")
        ending = _QUESTION_ENDING.match(sentences[-1])
        options = []
        for group in ("first", "second", "entity"):
            name = ending.group(group)
            if name not in index:
                raise ValueError(f"ProsQASymbolic: {_symbol_where(example)}: question names {name!r}, not in idx_to_symbol")
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

    KIND = "prosqa_edge_tokens"

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


# ------------------------------------------------------------------------- ProntoQA

_WORDS = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
_NO_SPACE_BEFORE = {".", ",", "?", "!", ":", ";"}
NEWLINE = "\n"
ANSWER_MARK = "###"
PRONTOQA_FIXED = (EOS_TEXT, BOT_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT, NEWLINE, ANSWER_MARK)


def split_words(text: str) -> list[str]:
    """Words and single punctuation marks, case kept ("Numpuses", "are", "not", ".")."""
    return _WORDS.findall(text)


def _vocabulary_words(example_lists: Iterable[Iterable]) -> list[str]:
    """Every word in the questions, steps and answers, sorted, less the fixed tokens."""
    seen: set[str] = set()
    for examples in example_lists:
        for ex in examples:
            for text in [ex.question, ex.answer, *ex.steps]:
                seen.update(split_words(text))
    return sorted(seen - set(PRONTOQA_FIXED))


class ProntoQASymbolic(CachedPieces):
    """Ids 0..6: eos, `<bot>`, `<eot>`, `<latent>`, `<pause>`, newline, `###`; then one id per
    word or punctuation mark seen when the vocabulary was built, sorted."""

    KIND = "prontoqa_symbolic"

    def __init__(self, words: Sequence[str]):
        super().__init__()
        words = list(words)
        clashes = [w for w in words if w in PRONTOQA_FIXED]
        if clashes or len(set(words)) != len(words):
            raise ValueError(f"ProntoQASymbolic: word list has duplicates or reserved tokens: {clashes[:5]}")
        self.words = list(PRONTOQA_FIXED) + words
        self.word_to_id = {w: i for i, w in enumerate(self.words)}
        (self.eos_id, self.bot_id, self.eot_id, self.latent_id, self.pause_id,
         self.newline_id, self.answer_mark_id) = range(len(PRONTOQA_FIXED))
        self.vocab_size = len(self.words)

    @classmethod
    def build(cls, example_lists: Iterable[Iterable]) -> "ProntoQASymbolic":
        """Vocabulary of every word in the questions, steps and answers of all examples."""
        return cls(_vocabulary_words(example_lists))

    # -- the protocol -----------------------------------------------------------

    def decode(self, ids: Sequence[int], example=None) -> str:
        pieces: list[str] = []
        for raw in ids:
            try:
                t = int(raw)
            except (TypeError, ValueError):
                t = -1
            word = self.words[t] if 0 <= t < len(self.words) else f"<unk:{raw}>"
            after_break = not pieces or pieces[-1].endswith(NEWLINE) or pieces[-1] in SPECIAL_TEXTS
            if word == NEWLINE or word in SPECIAL_TEXTS or word in _NO_SPACE_BEFORE or after_break:
                pieces.append(word)
            else:
                pieces.append(" " + word)
        return "".join(pieces)

    # -- checkpoints ------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"kind": self.KIND, "words": self.words[len(PRONTOQA_FIXED):]}

    @classmethod
    def from_dict(cls, data: dict) -> "ProntoQASymbolic":
        if not isinstance(data, dict) or data.get("kind") != cls.KIND or not isinstance(data.get("words"), list):
            raise ValueError(f"ProntoQASymbolic.from_dict: expected kind {cls.KIND!r} with a word list, got {data!r:.80}")
        return cls(data["words"])

    # -- encoding ---------------------------------------------------------------

    def _word_ids(self, text: str, example, what: str) -> list[int]:
        ids = []
        for word in split_words(text):
            if word not in self.word_to_id:
                raise ValueError(
                    f"ProntoQASymbolic: {_symbol_where(example)}: {what} has the word {word!r}, "
                    "which is not in the vocabulary (build it from every split used)"
                )
            ids.append(self.word_to_id[word])
        return ids

    def _question_ids(self, example) -> list[int]:
        return self._word_ids(example.question, example, "question") + [self.newline_id]

    def _step_ids(self, step: str, example, i: int) -> list[int]:
        return self._word_ids(step, example, f"step {i}") + [self.newline_id]

    def _encode(self, example) -> tuple:
        question = tuple(self._question_ids(example))
        steps = tuple(tuple(self._step_ids(s, example, i)) for i, s in enumerate(example.steps))
        answer = tuple([self.answer_mark_id] + self._word_ids(example.answer, example, "answer") + [self.eos_id])
        return question, steps, answer


# The question's fact sentences, in the forms ProntoQA writes them.
_FACT_FORMS = (
    re.compile(r"^(?:Every|Each) (?P<subj>\w+) is (?P<neg>not )?(?:an? )?(?P<obj>\w+)\.$"),
    re.compile(r"^(?P<subj>[A-Z]\w*uses) are (?P<neg>not )?(?P<obj>\w+)\.$"),
    re.compile(r"^(?P<subj>[A-Z]\w*) is (?P<neg>not )?(?:an? )?(?P<obj>\w+)\.$"),
)
_QUERY = "True or false:"


def _lemma(word: str) -> str:
    """A concept's singular lower-case name ("Numpuses", "numpuses" -> "numpus"); names
    ("Max") and properties ("wooden") unchanged."""
    return word[:-2].lower() if word.endswith("uses") else (word.lower() if word.endswith("pus") else word)


def parse_fact(sentence: str) -> tuple[str, bool, str] | None:
    """(subject, negated, object) of a ProntoQA fact sentence, concepts in their singular
    lower-case form: "Tumpuses are not floral." -> ("tumpus", True, "floral")."""
    for form in _FACT_FORMS:
        m = form.match(sentence)
        if m:
            return _lemma(m.group("subj")), m.group("neg") is not None, _lemma(m.group("obj"))
    return None


class ProntoQAFactTokens(ProntoQASymbolic):
    """ProntoQASymbolic, except that each fact sentence of the QUESTION (all but the final
    "True or false: ...") is one token standing for (subject, negated, object), the
    same token whatever wording the sentence uses ("Every X is a Y.", "Each X is a Y.",
    "Xs are Ys."). Steps, the query and the answer keep word tokens. As with
    ProsQAEdgeTokens, this makes "which rule starts at X" a single attention match
    instead of an induction circuit over words. Ids: ProntoQASymbolic's, then one per
    fact seen when the vocabulary was built. The question decodes to a canonical
    wording of its facts ("Every tumpus is a numpus."), not the original one."""

    KIND = "prontoqa_fact_tokens"
    NEGATION_IN_FACT = True     # whether a fact token holds its negation (ProntoQAFactSteps: a word)

    def __init__(self, words: Sequence[str], facts: Sequence):
        super().__init__(words)
        self.facts = [(str(s), bool(n), str(o)) for s, n, o in facts]
        if len(set(self.facts)) != len(self.facts):
            raise ValueError("ProntoQAFactTokens: the fact list has duplicates")
        self.fact_base = self.vocab_size
        self.fact_to_id = {f: self.fact_base + i for i, f in enumerate(self.facts)}
        self.vocab_size = self.fact_base + len(self.facts)

    @classmethod
    def build(cls, example_lists: Iterable[Iterable]) -> "ProntoQAFactTokens":
        example_lists = [list(examples) for examples in example_lists]
        words = _vocabulary_words(example_lists)
        facts = set()
        for examples in example_lists:
            for ex in examples:
                facts.update(f for f in map(parse_fact, _fact_sentences(ex.question)[0]) if f is not None)
        return cls(words, sorted(facts))

    def to_dict(self) -> dict:
        return {**super().to_dict(), "facts": [list(f) for f in self.facts]}

    @classmethod
    def from_dict(cls, data: dict) -> "ProntoQAFactTokens":
        if (not isinstance(data, dict) or data.get("kind") != cls.KIND or not isinstance(data.get("words"), list)
                or not isinstance(data.get("facts"), list)):
            raise ValueError(f"{cls.__name__}.from_dict: expected kind {cls.KIND!r} with word and fact lists, "
                             f"got {data!r:.80}")
        return cls(data["words"], data["facts"])

    def token_parts(self) -> dict[int, tuple[str, ...]]:
        """Each fact token's parts (`token_init: compositional`): its subject, its object
        and, where the token holds it, its negation ("is" or "not")."""
        return {self.fact_to_id[(s, n, o)]: (f"subject {s}", f"object {o}")
                + ((("not" if n else "is"),) if self.NEGATION_IN_FACT else ()) for s, n, o in self.facts}

    def _fact_at(self, ids: Sequence, k: int) -> tuple[str, bool, str] | None:
        """The fact of token ids[k]; None for any other id."""
        try:
            token = int(ids[k])
        except (TypeError, ValueError):
            return None
        return self.facts[token - self.fact_base] if self.fact_base <= token < self.vocab_size else None

    def _fact_piece(self, ids: Sequence, k: int) -> tuple[str, int] | None:
        """The canonical sentence that ids[k] starts and how many ids it takes; None for
        a word."""
        fact = self._fact_at(ids, k)
        return None if fact is None else (_canonical_sentence(*fact), 1)

    def decode(self, ids: Sequence[int], example=None) -> str:
        """Runs of word ids decode as ProntoQASymbolic does; pieces join with a space
        unless the next starts a line (or is a special token) or the last ended one."""
        pieces, run = [], []

        def add(text: str) -> None:
            joined = not pieces or pieces[-1].endswith(NEWLINE) or text.startswith((NEWLINE, *SPECIAL_TEXTS))
            pieces.append(text if joined else " " + text)

        k = 0
        while k < len(ids):
            piece = self._fact_piece(ids, k)
            if piece is None:
                run.append(ids[k])
                k += 1
                continue
            if run:
                add(super().decode(run))
                run = []
            add(piece[0])
            k += piece[1]
        if run:
            add(super().decode(run))
        return "".join(pieces)

    def _sentence_ids(self, fact: tuple[str, bool, str]) -> list[int] | None:
        """The ids of one parsed fact sentence; None when its fact has no token."""
        return [self.fact_to_id[fact]] if fact in self.fact_to_id else None

    def _fact_ids(self, sentences: list[str], example, what: str) -> list[int]:
        ids = []
        for k, sentence in enumerate(sentences):
            fact = parse_fact(sentence)
            if fact is None:
                raise ValueError(f"{type(self).__name__}: {_symbol_where(example)}: {what} sentence {k} "
                                 f"{sentence!r} is not a fact sentence")
            sentence_ids = self._sentence_ids(fact)
            if sentence_ids is None:
                raise ValueError(f"{type(self).__name__}: {_symbol_where(example)}: {what}: the fact {fact} is not "
                                 "in the vocabulary (build it from every split used)")
            ids += sentence_ids
        return ids

    def _question_ids(self, example) -> list[int]:
        sentences, query = _fact_sentences(example.question)
        return self._fact_ids(sentences, example, "question") + self._word_ids(query, example, "query") + [self.newline_id]


class ProntoQAFactSteps(ProntoQAFactTokens):
    """Every sentence of a ProntoQA example as two tokens: its fact without the negation,
    (subject, object), then the word "is" or "not". So the question's facts, the query
    ("True or false:" as words, then its two tokens) and each sentence of the steps
    ("Alex is a tumpus. Tumpuses are gorpuses." is four tokens); the answer keeps word
    tokens. Why:
    - a step copies its rule as the very tokens the question holds, and the step's
      wording ("Every X is a Y." or "Xs are Ys."), which the question's tokens no longer
      show, is not left for the model to guess;
    - the negation is one shared token: the last step ("Alex is not brown.") takes it
      from the last rule ("Every brimpus is not brown."), where one token per negated
      fact would have to learn each rule's negation from the handful of chains that end
      with it (a median of 5 of the 9,000 training chains).
    Ids as ProntoQAFactTokens'; its facts (the `facts` list) are stored with negated
    False, one per (subject, object) that the names seen allow: a subject is a person
    or a concept, an object a concept or a property. So renaming the concepts (the
    ontology's nodes: `relabel_nodes`, what `shuffle_nodes` does each epoch) always
    gives facts that have tokens."""

    KIND = "prontoqa_fact_steps"
    NEGATION_IN_FACT = False

    def __init__(self, words: Sequence[str], facts: Sequence):
        super().__init__(words, facts)
        self.concepts = sorted({name for s, _, o in self.facts for name in (s, o) if name.endswith("pus")})
        self.max_nodes = len(self.concepts)

    @classmethod
    def build(cls, example_lists: Iterable[Iterable]) -> "ProntoQAFactSteps":
        example_lists = [list(examples) for examples in example_lists]
        subjects, objects = set(), set()
        for examples in example_lists:
            for ex in examples:
                sentences, query = _fact_sentences(ex.question)
                sentences += [_query_sentence(query)] + [x for step in ex.steps for x in _sentences(step)]
                for fact in filter(None, map(parse_fact, sentences)):
                    subjects.add(fact[0])
                    objects.add(fact[2])
        concepts = {name for name in subjects | objects if name.endswith("pus")}
        negations = (False, True) if cls.NEGATION_IN_FACT else (False,)
        facts = [(s, n, o) for s in sorted(subjects | concepts) for n in negations for o in sorted(objects | concepts)]
        tok = cls(_vocabulary_words(example_lists), facts)
        for word in () if cls.NEGATION_IN_FACT else ("is", "not"):
            if word not in tok.word_to_id:
                raise ValueError(f"{cls.__name__}: no example has the word {word!r}, which every fact needs")
        return tok

    def _sentence_ids(self, fact: tuple[str, bool, str]) -> list[int] | None:
        if self.NEGATION_IN_FACT:
            return super()._sentence_ids(fact)
        pair = self.fact_to_id.get((fact[0], False, fact[2]))
        return None if pair is None else [pair, self.word_to_id["not" if fact[1] else "is"]]

    def _fact_piece(self, ids: Sequence, k: int) -> tuple[str, int] | None:
        """A pair token and the "is" or "not" after it make one sentence; a pair
        without one shows its missing negation as "is/not"."""
        if self.NEGATION_IN_FACT:
            return super()._fact_piece(ids, k)
        fact = self._fact_at(ids, k)
        if fact is None:
            return None
        subj, _, obj = fact
        following = ids[k + 1] if k + 1 < len(ids) else None
        for word, neg in (("is", False), ("not", True)):
            if following == self.word_to_id[word]:
                return _canonical_sentence(subj, neg, obj), 2
        return _canonical_sentence(subj, None, obj), 1

    def relabel_nodes(self, ids: Sequence[int], perm: Sequence[int]) -> list[int]:
        """`ids` with concept i renamed concept perm[i] in every fact token: the same
        ontology under other names. Other ids, IGNORE labels included, pass."""
        if sorted(perm) != list(range(self.max_nodes)):
            raise ValueError(f"relabel_nodes: perm must be a permutation of 0..{self.max_nodes - 1}")
        rename = {c: self.concepts[p] for c, p in zip(self.concepts, perm)}
        out = []
        for t in ids:
            if self.fact_base <= t < self.vocab_size:
                subj, negated, obj = self.facts[t - self.fact_base]
                t = self.fact_to_id[(rename.get(subj, subj), negated, rename.get(obj, obj))]
            out.append(t)
        return out

    def _question_ids(self, example) -> list[int]:
        sentences, query = _fact_sentences(example.question)
        return (self._fact_ids(sentences, example, "question") + self._word_ids(_QUERY, example, "query")
                + self._fact_ids([_query_sentence(query)], example, "query") + [self.newline_id])

    def _step_ids(self, step: str, example, i: int) -> list[int]:
        return self._fact_ids(_sentences(step), example, f"step {i}") + [self.newline_id]


class ProntoQAFactSentences(ProntoQAFactSteps):
    """ProntoQAFactSteps with the negation inside the fact token: every sentence of the
    question, the query and the steps is ONE token, (subject, negated, object). Nothing
    then has to be read from the token beside another, which models trained from scratch
    on a CPU budget never learned to do (no head attended to the previous token, so the
    last rule's `is`/`not` was copied wrong). The price is one token per negated fact: a
    step's last sentence ("Alex is not brown.") is a token that only the chains ending
    with it train. `token_init: compositional` starts each such row as the sum of a
    subject, a negation and an object vector, so that it shares them with every other
    fact. Its `facts` are every (subject, negated, object) that the names seen allow."""

    KIND = "prontoqa_fact_sentences"
    NEGATION_IN_FACT = True


def _canonical_sentence(subj: str, neg: bool | None, obj: str) -> str:
    """"Every tumpus is not a numpus." (neg None: "is/not", a negation not known)."""
    article = ("an " if obj[0] in "aeiou" else "a ") if obj.endswith("pus") else ""
    head = f"Every {subj}" if subj.endswith("pus") else subj
    verb = "is/not" if neg is None else "is not" if neg else "is"
    return f"{head} {verb} {article}{obj}."


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"[^.]+\.", text)]


def _query_sentence(query: str) -> str:
    """The fact sentence a query asks about: "True or false: Alex is happy." -> "Alex is happy."."""
    return query[len(_QUERY):].strip()


def _fact_sentences(question: str) -> tuple[list[str], str]:
    """The fact sentences before "True or false:", and the query from there on."""
    at = question.find(_QUERY)
    if at < 0:
        raise ValueError(f"ProntoQAFactTokens: question {question[:60]!r}... has no {_QUERY!r} query")
    return _sentences(question[:at]), question[at:]


# The symbolic tokenizations by the name a run config gives them (`tokenization:`).
PROSQA_TOKENIZATIONS = {cls.KIND: cls for cls in (ProsQASymbolic, ProsQAEdgeTokens)}
PRONTOQA_TOKENIZATIONS = {cls.KIND: cls for cls in (ProntoQASymbolic, ProntoQAFactTokens, ProntoQAFactSteps,
                                                     ProntoQAFactSentences)}
