"""Made-up vocabularies for the generators, in the style of the official files:
capitalised first names for people, nonsense '-pus' words for concepts, and groups of
mutually exclusive adjectives for ProntoQA properties. None of these words occur in the
official ProsQA/ProntoQA files, so generated data can also test out-of-vocabulary
generalisation; pass the official pools to a generator to match the files' words.
"""
from __future__ import annotations

PERSON_NAMES = (
    "Anna", "Ben", "Clara", "Dan", "Edith", "Felix", "Grace", "Hugo", "Iris", "Jonas",
    "Kate", "Leo", "Mia", "Nora", "Owen", "Paul", "Rosa", "Simon", "Tara", "Victor",
)

CONCEPT_NAMES = (
    "blorpus", "cradpus", "drimpus", "flempus", "glumpus", "haspus", "jindpus", "klorpus",
    "mervpus", "nalpus", "plimpus", "quodpus", "ristpus", "sempus", "thalpus", "vornpus",
    "wexpus", "yalpus", "zindpus", "bampus", "cholpus", "dwimpus", "fratpus", "grelpus",
    "hompus", "jarpus", "skempus", "trompus", "velpus", "wrimpus", "yompus", "zalpus",
    "brespus", "crumpus", "dolpus", "fespus", "hurpus", "kelpus", "mafpus", "plurpus",
    "ulpus", "orgpus", "ampus", "ezpus",
)

# Each group holds properties that exclude each other (a thing has one colour), so one
# ProntoQA example takes at most one adjective per group.
PROPERTY_FAMILIES = (
    ("green", "purple", "yellow", "grey"),
    ("huge", "tiny"),
    ("warm", "chilly", "mild"),
    ("stormy", "foggy", "cloudy", "breezy"),
    ("salty", "tangy", "bland", "sugary"),
    ("smoky", "musty", "fragrant"),
    ("noisy", "quiet"),
    ("soft", "rough", "sticky"),
    ("shiny", "dim", "glowing"),
    ("stony", "glassy", "papery", "woolen"),
    ("quick", "sluggish", "steady"),
    ("cheerful", "gloomy", "calm", "grumpy"),
    ("polite", "rude", "brave", "timid"),
    ("heavy", "light"),
    ("young", "old", "ancient"),
)


def prosqa_name_pools(examples) -> tuple[list[str], list[str]]:
    """(person names, concept names) used by some ProsQA examples, e.g. the official
    validation file, to generate training data in the same words (sorted, distinct)."""
    persons, concepts = set(), set()
    for ex in examples:
        for name in ex.idx_to_symbol or ():
            (persons if name[:1].isupper() else concepts).add(name)
    return sorted(persons), sorted(concepts)
