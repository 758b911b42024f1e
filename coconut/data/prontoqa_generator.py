"""A ProntoQA-style generator: 5-hop questions over a fictional ontology, written in the
sentence forms of the official 5-hop files (Saparov & He 2022, as converted by the
Coconut reference).

Shape of one example, read off the official training split (every example has it):
- a chain of five concepts c0 → c1 → … → c4 ("Each c0 is a c1."); the entity is a c0;
- every chain concept has one more parent concept (c4 two), a side branch;
- each chain concept and all side concepts but one of c4's carry a property, each from a
  different family of mutually exclusive adjectives; c4's is the one the query asks about;
- distractors: the entity is also a member of an unrelated concept (which has a property
  and one parent), and another unrelated concept has the opposite of the queried property;
- the 23 rule sentences come shuffled, then the two membership sentences, then
  "True or false: Max is [not] P."; the chain of thought pairs "Max is a cᵢ." with the rule
  used, and ends with the conclusion, so steps are 6 pairs of sentences.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from coconut.data.example import Example
from coconut.data.name_pools import CONCEPT_NAMES, PERSON_NAMES, PROPERTY_FAMILIES

HOPS = 5                 # concepts on the chain, the last one holding the queried property
P_NEGATED_PROPERTY = 0.3  # share of "is not" among the properties other than the queried one


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _plural(concept: str) -> str:
    return concept + "es"


def membership_sentence(entity: str, concept: str) -> str:
    return f"{entity} is {_article(concept)} {concept}."


def property_of_entity(entity: str, adjective: str, negated: bool) -> str:
    return f"{entity} is {'not ' if negated else ''}{adjective}."


@dataclass(frozen=True)
class _Rule:
    """A rule sentence "concept ⊂ parent" or "concept has [not] property"."""
    concept: str
    parent: str | None = None
    adjective: str | None = None
    negated: bool = False

    def sentence(self, form: str) -> str:
        # The official files use three equivalent forms, the plural one about half the time.
        if self.parent is not None:
            if form == "plural":
                return f"{_plural(self.concept).capitalize()} are {_plural(self.parent)}."
            return f"{form} {self.concept} is {_article(self.parent)} {self.parent}."
        predicate = f"{'not ' if self.negated else ''}{self.adjective}"
        if form == "plural":
            return f"{_plural(self.concept).capitalize()} are {predicate}."
        return f"{form} {self.concept} is {predicate}."


def _random_form(rng: random.Random) -> str:
    return rng.choice(("plural", "plural", "Each", "Every"))


def _one_example(
    rng: random.Random,
    names: Sequence[str],
    concepts: Sequence[str],
    families: Sequence[Sequence[str]],
) -> Example:
    entity = rng.choice(list(names))
    # 5 chain + 6 side + distractor and its parent + the opposite-property concept.
    picked = rng.sample(list(concepts), 14)
    chain, sides, distractor, distractor_parent, opposite = (
        picked[:HOPS], picked[HOPS:HOPS + 6], picked[11], picked[12], picked[13]
    )
    adjectives = [rng.choice(list(family)) for family in rng.sample(list(families), 11)]

    chain_rules = [_Rule(chain[i], parent=chain[i + 1]) for i in range(HOPS - 1)]
    queried = _Rule(chain[-1], adjective=adjectives[0], negated=rng.random() < 0.5)
    chain_rules.append(queried)
    rules = list(chain_rules)
    side_parents = [(chain[i], sides[i]) for i in range(HOPS - 1)] + [(chain[-1], sides[4]), (chain[-1], sides[5])]
    rules += [_Rule(child, parent=parent) for child, parent in side_parents]
    rules.append(_Rule(distractor, parent=distractor_parent))
    # Properties: the other chain concepts, five of the six side concepts, the distractor.
    unpropertied_side = rng.choice(sides[4:])
    holders = chain[:-1] + [s for s in sides if s != unpropertied_side] + [distractor]
    rules += [
        _Rule(holder, adjective=adj, negated=rng.random() < P_NEGATED_PROPERTY)
        for holder, adj in zip(holders, adjectives[1:])
    ]
    rules.append(_Rule(opposite, adjective=queried.adjective, negated=not queried.negated))

    forms = {rule: _random_form(rng) for rule in rules}
    sentences = [rule.sentence(forms[rule]) for rule in rules]
    rng.shuffle(sentences)
    memberships = [membership_sentence(entity, chain[0]), membership_sentence(entity, distractor)]
    rng.shuffle(memberships)

    query_negated = rng.random() < 0.5
    query = "True or false: " + property_of_entity(entity, queried.adjective, query_negated)
    thoughts = []
    for concept, rule in zip(chain, chain_rules):
        thoughts += [membership_sentence(entity, concept), rule.sentence(forms[rule])]
    thoughts.append(property_of_entity(entity, queried.adjective, queried.negated))
    steps = [" ".join(thoughts[i : i + 2]) for i in range(0, len(thoughts), 2)]
    return Example(
        question=" ".join(sentences + memberships + [query]),
        steps=steps,
        answer="True" if query_negated == queried.negated else "False",
    )


def generate_prontoqa(
    n: int,
    seed: int,
    names: Sequence[str] = PERSON_NAMES,
    concepts: Sequence[str] = CONCEPT_NAMES,
    property_families: Sequence[Sequence[str]] = PROPERTY_FAMILIES,
    start: int = 0,
) -> list[Example]:
    """Examples start .. start + n - 1 of the ProntoQA-style stream of `seed`; example i
    depends only on (seed, i)."""
    if n < 0 or start < 0:
        raise ValueError(f"generate_prontoqa: n and start must be >= 0, got n={n}, start={start}")
    if len(set(concepts)) < 14:
        raise ValueError(f"generate_prontoqa: need at least 14 distinct concept names, got {len(set(concepts))}")
    if len(property_families) < 11:
        raise ValueError(f"generate_prontoqa: need at least 11 property families, got {len(property_families)}")
    return [_one_example(random.Random(f"prontoqa/{seed}/{i}"), names, concepts, property_families)
            for i in range(start, start + n)]
