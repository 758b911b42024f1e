"""ProntoQA as symbols, for from-scratch CPU training (`Tokenization`, see base.py).

ProntoQASymbolic: one token per word or punctuation mark, vocabulary built from data:

    question  = words of the question, then a newline token
    step i    = words of steps[i], then a newline token
    answer    = ### True|False eos

ProntoQAFactSentences: every sentence of the question, the query and the steps is ONE
token standing for its fact (subject, negated, object), whatever its wording ("Every X
is not a Y." and "Xs are not Ys." are the same token); "True or false:" and the answer
stay words:

    question  = one token per fact, True or false :, the query's fact, newline
    step i    = one token per sentence of steps[i], then a newline token
    answer    = ### True|False eos

Copying a rule into a step is then copying one token, and the answer compares the last
step's token with the query's: nothing has to be read from a word beside another.

`decode` renders ids back to text the reference scoring rule reads ("### True"); fact
tokens decode to one canonical wording ("Every tumpus is not a numpus."). It never
raises: tokens it cannot place are written out as they are.
"""
from __future__ import annotations

import functools
import re
from typing import Iterable, Sequence

from .markers import BOT_TEXT, EOS_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT, SPECIAL_TEXTS
from .pieces import CachedPieces, where_in

_WORDS = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
_NO_SPACE_BEFORE = {".", ",", "?", "!", ":", ";"}
NEWLINE = "\n"
ANSWER_MARK = "###"
PRONTOQA_FIXED = (EOS_TEXT, BOT_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT, NEWLINE, ANSWER_MARK)
QUERY = "True or false:"
# The fact sentences, in the forms ProntoQA writes them.
_FACT_FORMS = (
    re.compile(r"^(?:Every|Each) (?P<subj>\w+) is (?P<neg>not )?(?:an? )?(?P<obj>\w+)\.$"),
    re.compile(r"^(?P<subj>[A-Z]\w*uses) are (?P<neg>not )?(?P<obj>\w+)\.$"),
    re.compile(r"^(?P<subj>[A-Z]\w*) is (?P<neg>not )?(?:an? )?(?P<obj>\w+)\.$"),
)


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

    kind = "prontoqa_symbolic"

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

    def to_dict(self) -> dict:
        return {"kind": self.kind, "words": self.words[len(PRONTOQA_FIXED):]}

    @classmethod
    def from_dict(cls, data: dict) -> "ProntoQASymbolic":
        if not isinstance(data, dict) or data.get("kind") != cls.kind or not isinstance(data.get("words"), list):
            raise ValueError(f"ProntoQASymbolic.from_dict: expected kind {cls.kind!r} with a word list, got {data!r:.80}")
        return cls(data["words"])

    def _word_ids(self, text: str, example, what: str) -> list[int]:
        ids = []
        for word in split_words(text):
            if word not in self.word_to_id:
                raise ValueError(f"{type(self).__name__}: {where_in(example)}: {what} has the word {word!r}, "
                                 "which is not in the vocabulary (build it from every split used)")
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


class ProntoQAFactSentences(ProntoQASymbolic):
    """ProntoQASymbolic's word ids, then one id per fact (subject, negated, object) of
    the `facts` list: every triple the names seen allow, a subject being a person or a
    concept and an object a concept or a property. So renaming the concepts (the
    ontology's nodes: `relabel_nodes`, what `shuffle_nodes` does each epoch) always gives
    facts that have tokens. A negated fact is a token of its own, which only the chains
    that end with it train; `token_init: compositional` starts its row as the sum of its
    parts (`token_parts`) so that it shares them with the common facts."""

    kind = "prontoqa_fact_sentences"
    renames_nodes = True

    def __init__(self, words: Sequence[str], facts: Sequence):
        super().__init__(words)
        self.facts = [(str(s), bool(n), str(o)) for s, n, o in facts]
        if len(set(self.facts)) != len(self.facts):
            raise ValueError("ProntoQAFactSentences: the fact list has duplicates")
        self.fact_base = self.vocab_size
        self.fact_to_id = {f: self.fact_base + i for i, f in enumerate(self.facts)}
        self.vocab_size = self.fact_base + len(self.facts)
        self.concepts = sorted({name for s, _, o in self.facts for name in (s, o) if name.endswith("pus")})
        self.max_nodes = len(self.concepts)

    @classmethod
    def build(cls, example_lists: Iterable[Iterable]) -> "ProntoQAFactSentences":
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
        facts = [(s, n, o) for s in sorted(subjects | concepts) for n in (False, True)
                 for o in sorted(objects | concepts)]
        return cls(_vocabulary_words(example_lists), facts)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "facts": [list(f) for f in self.facts]}

    @classmethod
    def from_dict(cls, data: dict) -> "ProntoQAFactSentences":
        if (not isinstance(data, dict) or data.get("kind") != cls.kind or not isinstance(data.get("words"), list)
                or not isinstance(data.get("facts"), list)):
            raise ValueError(f"{cls.__name__}.from_dict: expected kind {cls.kind!r} with word and fact lists, "
                             f"got {data!r:.80}")
        return cls(data["words"], data["facts"])

    def token_parts(self) -> dict[int, tuple[str, ...]]:
        """Each fact token's parts (`token_init: compositional`): its subject, its object
        and its negation ("is" or "not")."""
        return {self.fact_to_id[(s, n, o)]: (f"subject {s}", f"object {o}", "not" if n else "is")
                for s, n, o in self.facts}

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

    def decode(self, ids: Sequence[int], example=None) -> str:
        """Runs of word ids decode as ProntoQASymbolic's; pieces join with a space unless
        the next starts a line (or is a special token) or the last ended one."""
        pieces, run = [], []

        def add(text: str) -> None:
            joined = not pieces or pieces[-1].endswith(NEWLINE) or text.startswith((NEWLINE, *SPECIAL_TEXTS))
            pieces.append(text if joined else " " + text)

        for raw in ids:
            fact = self._fact_of(raw)
            if fact is None:
                run.append(raw)
                continue
            if run:
                add(super().decode(run))
                run = []
            add(_canonical_sentence(*fact))
        if run:
            add(super().decode(run))
        return "".join(pieces)

    def _fact_of(self, raw) -> tuple[str, bool, str] | None:
        """The fact a token stands for; None for any other id."""
        try:
            token = int(raw)
        except (TypeError, ValueError):
            return None
        return self.facts[token - self.fact_base] if self.fact_base <= token < self.vocab_size else None

    def _fact_ids(self, sentences: list[str], example, what: str) -> list[int]:
        ids = []
        for k, sentence in enumerate(sentences):
            fact = parse_fact(sentence)
            if fact is None:
                raise ValueError(f"ProntoQAFactSentences: {where_in(example)}: {what} sentence {k} "
                                 f"{sentence!r} is not a fact sentence")
            if fact not in self.fact_to_id:
                raise ValueError(f"ProntoQAFactSentences: {where_in(example)}: {what}: the fact {fact} is not "
                                 "in the vocabulary (build it from every split used)")
            ids.append(self.fact_to_id[fact])
        return ids

    def _question_ids(self, example) -> list[int]:
        sentences, query = _fact_sentences(example.question)
        return (self._fact_ids(sentences, example, "question") + self._word_ids(QUERY, example, "query")
                + self._fact_ids([_query_sentence(query)], example, "query") + [self.newline_id])

    def _step_ids(self, step: str, example, i: int) -> list[int]:
        return self._fact_ids(_sentences(step), example, f"step {i}") + [self.newline_id]


def _lemma(word: str) -> str:
    """A concept's singular lower-case name ("Numpuses", "numpuses" -> "numpus"); names
    ("Max") and properties ("wooden") unchanged."""
    return word[:-2].lower() if word.endswith("uses") else (word.lower() if word.endswith("pus") else word)


@functools.lru_cache(maxsize=1 << 16)  # a split repeats its few thousand sentences ~70 times each
def parse_fact(sentence: str) -> tuple[str, bool, str] | None:
    """(subject, negated, object) of a ProntoQA fact sentence, concepts in their singular
    lower-case form: "Tumpuses are not floral." -> ("tumpus", True, "floral")."""
    for form in _FACT_FORMS:
        m = form.match(sentence)
        if m:
            return _lemma(m.group("subj")), m.group("neg") is not None, _lemma(m.group("obj"))
    return None


def _canonical_sentence(subj: str, neg: bool, obj: str) -> str:
    """"Every tumpus is not a numpus."."""
    article = ("an " if obj[0] in "aeiou" else "a ") if obj.endswith("pus") else ""
    head = f"Every {subj}" if subj.endswith("pus") else subj
    return f"{head} {'is not' if neg else 'is'} {article}{obj}."


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"[^.]+\.", text)]


def _query_sentence(query: str) -> str:
    """The fact sentence a query asks about: "True or false: Alex is happy." -> "Alex is happy."."""
    return query[len(QUERY):].strip()


def _fact_sentences(question: str) -> tuple[list[str], str]:
    """The fact sentences before "True or false:", and the query from there on."""
    at = question.find(QUERY)
    if at < 0:
        raise ValueError(f"ProntoQAFactSentences: question {question[:60]!r}... has no {QUERY!r} query")
    return _sentences(question[:at]), question[at:]
