"""ProntoQA generator: determinism, entailed chains of thought, the official format."""
import re
from functools import lru_cache

import pytest

from coconut.data import Example, generate_prontoqa, load_examples, official_path
from coconut.data.name_pools import PROPERTY_FAMILIES

PRONTOQA_TRAIN = official_path("prontoqa", "train")

SUBSET = re.compile(r"(?:(?:Each|Every) (?P<c>[a-z]+) is (?P<art>an?) (?P<p>[a-z]+pus)|(?P<cs>[A-Z][a-z]+puses) are (?P<ps>[a-z]+puses))\.")
PROPERTY = re.compile(r"(?:(?:Each|Every) (?P<c>[a-z]+pus) is|(?P<cs>[A-Z][a-z]+puses) are) (?P<neg>not )?(?P<adj>[a-z]+)\.")
MEMBER = re.compile(r"(?P<e>[A-Z][a-z]+) is (?P<art>an?) (?P<c>[a-z]+pus)\.")
FACT = re.compile(r"(?P<e>[A-Z][a-z]+) is (?P<neg>not )?(?P<adj>[a-z]+)\.")


@lru_cache(maxsize=None)
def official():
    return tuple(load_examples(PRONTOQA_TRAIN)[:600])


@lru_cache(maxsize=None)
def generated():
    return tuple(generate_prontoqa(600, seed=0))


def sentences(text):
    return [s.strip() for s in re.findall(r"[^.]+\.", text)]


def singular(plural):
    return plural[:-2].lower()


def article_ok(m):
    word = m.group("p") if "p" in m.groupdict() else m.group("c")
    return m.group("art") == ("an" if word[0] in "aeiou" else "a")


def parse_rule(sentence):
    """("subset", concept, parent) or ("property", concept, (adjective, negated))."""
    if m := SUBSET.fullmatch(sentence):
        if m.group("c"):
            assert article_ok(m), sentence
            return "subset", m.group("c"), m.group("p")
        return "subset", singular(m.group("cs")), singular(m.group("ps"))
    if (m := PROPERTY.fullmatch(sentence)) and not m.group("adj").endswith("pus"):
        concept = m.group("c") or singular(m.group("cs"))
        return "property", concept, (m.group("adj"), bool(m.group("neg")))
    raise AssertionError(f"not a rule sentence: {sentence!r}")


def check_format(ex):
    body, query = ex.question.split(" True or false: ")
    body_sentences = sentences(body)
    assert " ".join(body_sentences) == body and len(body_sentences) == 25
    q = FACT.fullmatch(query)
    assert q, query
    entity = q.group("e")
    members = [MEMBER.fullmatch(s) for s in body_sentences[-2:]]
    assert all(m and m.group("e") == entity and article_ok(m) for m in members)
    kinds = [parse_rule(s)[0] for s in body_sentences[:-2]]
    assert kinds.count("subset") == 11 and kinds.count("property") == 12
    assert len(ex.steps) == 6
    assert [len(sentences(s)) for s in ex.steps] == [2, 2, 2, 2, 2, 1]
    assert ex.answer in ("True", "False")


def check_entailed(ex):
    """The chain of thought uses only the question's facts and reaches the query."""
    body, query = ex.question.split(" True or false: ")
    facts = sentences(body)
    rules, members = facts[:-2], {MEMBER.fullmatch(s).group("c") for s in facts[-2:]}
    entity = FACT.fullmatch(query).group("e")
    concept = None
    for i, step in enumerate(ex.steps[:5]):
        membership, rule = sentences(step)
        m = MEMBER.fullmatch(membership)
        assert m and m.group("e") == entity
        assert (m.group("c") in members) if i == 0 else (m.group("c") == concept)
        assert rule in rules, rule
        kind, subject, what = parse_rule(rule)
        assert subject == m.group("c")
        assert (kind == "property") == (i == 4)
        concept = what
    conclusion = FACT.fullmatch(ex.steps[5])
    adjective, negated = concept
    assert conclusion and conclusion.group("e") == entity
    assert (conclusion.group("adj"), bool(conclusion.group("neg"))) == (adjective, negated)
    q = FACT.fullmatch(query)
    assert q.group("adj") == adjective
    assert ex.answer == ("True" if bool(q.group("neg")) == negated else "False")


def test_deterministic_per_seed():
    assert generate_prontoqa(10, seed=4) == generate_prontoqa(10, seed=4)
    assert generate_prontoqa(4, seed=4) == generate_prontoqa(10, seed=4)[:4]
    assert generate_prontoqa(3, seed=4, start=7) == generate_prontoqa(10, seed=4)[7:]
    assert generate_prontoqa(10, seed=5) != generate_prontoqa(10, seed=4)


@pytest.mark.parametrize("source", [official, generated])
def test_format_and_entailment(source):
    for ex in source():
        check_format(ex)
        check_entailed(ex)


def test_checks_catch_broken_examples():
    ex = generate_prontoqa(1, seed=9)[0]
    flipped = Example(ex.question, ex.steps, "True" if ex.answer == "False" else "False")
    with pytest.raises(AssertionError):
        check_entailed(flipped)
    skipped = Example(ex.question, ex.steps[:1] + ex.steps[2:] + ex.steps[-1:], ex.answer)
    with pytest.raises(AssertionError):
        check_entailed(skipped)


def _shares(examples):
    rules = [s for ex in examples for s in sentences(ex.question.split(" True or false: ")[0])[:-2]]
    props = [parse_rule(s) for s in rules if parse_rule(s)[0] == "property"]
    return {
        "plural": sum(" are " in s for s in rules) / len(rules),
        "each": sum(s.startswith("Each ") for s in rules) / len(rules),
        "negated": sum(p[2][1] for p in props) / len(props),
        "true": sum(ex.answer == "True" for ex in examples) / len(examples),
        "query_negated": sum(" is not " in ex.question.split("True or false: ")[1] for ex in examples) / len(examples),
    }


def test_sentence_form_shares_match_official():
    gen, off = _shares(generated()), _shares(official())
    for key in ("plural", "each", "negated", "query_negated"):
        assert abs(gen[key] - off[key]) <= 0.06, (key, gen[key], off[key])
    # Answers are balanced in both (600 examples: a standard error of 0.02).
    assert 0.44 <= off["true"] <= 0.56 and 0.44 <= gen["true"] <= 0.56


def test_properties_come_from_distinct_families():
    family_of = {adj: i for i, fam in enumerate(PROPERTY_FAMILIES) for adj in fam}
    for ex in generated()[:100]:
        rules = [parse_rule(s) for s in sentences(ex.question.split(" True or false: ")[0])[:-2]]
        adjectives = {r[2][0] for r in rules if r[0] == "property"}
        assert len(adjectives) == 11
        assert len({family_of[a] for a in adjectives}) == 11


def test_bad_arguments():
    with pytest.raises(ValueError, match="14 distinct concept"):
        generate_prontoqa(1, seed=0, concepts=["apus"] * 20)
    with pytest.raises(ValueError, match="n and start must be"):
        generate_prontoqa(-1, seed=0)
    with pytest.raises(ValueError, match="n and start must be"):
        generate_prontoqa(1, seed=0, start=-2)
