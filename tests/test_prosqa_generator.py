"""ProsQA generator: determinism, validity of every example, statistics of the official file."""
import re
from functools import lru_cache

import pytest

from coconut.data import (
    ProsQASettings,
    compare_prosqa,
    generate_prosqa,
    load_examples,
    official_path,
    print_prosqa_comparison,
    prosqa_stats,
)
from coconut.data.name_pools import CONCEPT_NAMES, PERSON_NAMES, prosqa_name_pools
from coconut.data.prosqa_graph import children_lists, count_shortest_paths, distances_from, edge_sentence, shortest_paths_between

PROSQA_VALID = official_path("prosqa", "valid")


@lru_cache(maxsize=None)
def generated():
    return tuple(generate_prosqa(1000, seed=0))


@lru_cache(maxsize=None)
def official():
    return tuple(load_examples(PROSQA_VALID))


def test_deterministic_per_seed_and_prefix_stable():
    a, b = generate_prosqa(15, seed=7), generate_prosqa(15, seed=7)
    assert a == b
    assert generate_prosqa(5, seed=7) == a[:5]
    assert generate_prosqa(6, seed=7, start=9) == a[9:]   # a later part alone
    assert generate_prosqa(15, seed=8) != a
    with pytest.raises(ValueError, match="start"):
        generate_prosqa(1, seed=7, start=-1)


def check_valid(ex):
    """Every property the official examples have (the test runs it on them too)."""
    names = ex.idx_to_symbol
    n = len(names)
    assert len(set(names)) == n
    has_parent = {d for _, d in ex.edges}
    # People exactly at parentless nodes; edges listed by destination, sources first.
    assert all(names[i][0].isupper() == (i not in has_parent) for i in range(n))
    assert all(s < d for s, d in ex.edges)
    assert [d for _, d in ex.edges] == sorted(d for _, d in ex.edges)
    assert len(set(ex.edges)) == len(ex.edges)
    assert ex.root in (0, 1) and 1 - ex.root not in has_parent
    children = children_lists(n, ex.edges)
    dist = distances_from(children, ex.root)
    assert ex.target in dist and ex.neg_target not in dist
    assert not children[ex.target] and not children[ex.neg_target]
    # Question: exactly the edges, each once, then "Is Tom a A or B?".
    body, ending = ex.question.rsplit(" Is ", 1)
    sentences = [s.strip() for s in re.findall(r"[^.]+\.", body)]
    assert " ".join(sentences) == body  # single spaces between sentences
    assert sorted(sentences) == sorted(edge_sentence(names[a], names[b]) for a, b in ex.edges)
    m = re.fullmatch(r"(\S+) a (\S+) or (\S+)\?", ending)
    assert m and m.group(1) == names[ex.root]
    assert {m.group(2), m.group(3)} == {names[ex.target], names[ex.neg_target]}
    assert ex.answer == f"{names[ex.root]} is a {names[ex.target]}."
    # Steps: the sentences of one shortest root -> target path.
    paths = shortest_paths_between(children, ex.root, ex.target)
    assert len(paths) == count_shortest_paths(children, ex.root, ex.target)
    assert len(ex.steps) == dist[ex.target]
    assert any(ex.steps == [edge_sentence(names[a], names[b]) for a, b in zip(p, p[1:])] for p in paths)


def test_checker_accepts_official_examples():
    for ex in official():
        check_valid(ex)


def test_every_generated_example_is_valid():
    for ex in generated():
        check_valid(ex)


def test_checker_rejects_a_broken_example():
    ex = generate_prosqa(1, seed=3)[0]
    broken = type(ex)(**{**ex.__dict__, "steps": ex.steps[:-1]})
    with pytest.raises(AssertionError):
        check_valid(broken)
    swapped = type(ex)(**{**ex.__dict__, "target": ex.neg_target, "neg_target": ex.target})
    with pytest.raises(AssertionError):
        check_valid(swapped)


def test_statistics_match_the_official_file():
    gen, off = prosqa_stats(generated()), prosqa_stats(official())
    assert abs(gen["nodes_mean"] - off["nodes_mean"]) <= 1.0
    assert 14 <= gen["nodes_min"] and gen["nodes_max"] <= 28
    assert abs(gen["edges_mean"] - off["edges_mean"]) <= 2.0
    assert (gen["steps_min"], gen["steps_max"]) == (3, 6)
    for k in (3, 4, 5, 6):
        assert abs(gen["steps_share"][k] - off["steps_share"][k]) <= 0.08, k
    assert abs(gen["shortest_paths_mean"] - off["shortest_paths_mean"]) <= 0.3
    assert abs(gen["persons_mean"] - off["persons_mean"]) <= 0.4
    assert gen["persons_min"] == 2
    assert abs(gen["leaves_mean"] - off["leaves_mean"]) <= 1.0
    assert abs(gen["both_families_nodes_mean"] - off["both_families_nodes_mean"]) <= 0.5
    assert abs(gen["root_id_one_share"] - off["root_id_one_share"]) <= 0.08
    assert abs(gen["correct_first_share"] - off["correct_first_share"]) <= 0.08
    # And the official file's own numbers are what the semantics page states.
    assert off["nodes_mean"] == pytest.approx(22.8, abs=0.1)
    assert off["steps_share"][3] == pytest.approx(0.41, abs=0.01)


def test_names_are_from_the_pools_and_unique_per_example():
    used = {name for ex in generated()[:200] for name in ex.idx_to_symbol}
    assert used <= set(PERSON_NAMES) | set(CONCEPT_NAMES)
    assert not used & {name for ex in official() for name in ex.idx_to_symbol}  # our own words
    official_persons, official_concepts = prosqa_name_pools(official())
    assert (len(official_persons), len(official_concepts)) == (17, 38)
    for ex in generate_prosqa(50, seed=1, person_names=official_persons, concept_names=official_concepts):
        check_valid(ex)
        assert set(ex.idx_to_symbol) <= set(official_persons) | set(official_concepts)
    persons = ["Zed", "Yara", "Xavi", "Wanda", "Vera", "Ugo", "Tina", "Sven", "Rita", "Quin", "Pia", "Ola"]
    concepts = [f"zorp{i}us" for i in range(40)]
    for ex in generate_prosqa(20, seed=1, person_names=persons, concept_names=concepts):
        assert set(ex.idx_to_symbol) <= set(persons) | set(concepts)


def test_settings_change_the_graphs():
    deep = generate_prosqa(50, seed=2, settings=ProsQASettings(min_steps=5))
    assert min(len(ex.steps) for ex in deep) == 5
    all_root_one = generate_prosqa(30, seed=2, settings=ProsQASettings(p_root_id_one=1.0))
    assert all(ex.root == 1 for ex in all_root_one)
    with pytest.raises(ValueError, match="name pools too small"):
        generate_prosqa(3, seed=0, concept_names=["apus", "bpus"])
    with pytest.raises(ValueError, match="capitalised"):
        generate_prosqa(3, seed=0, person_names=["tom", "Ann"])


def test_comparison_table(capsys):
    table = compare_prosqa(generated()[:100], official())
    lines = table.splitlines()
    assert lines[0].split() == ["statistic", "generated", "official"]
    row = next(line for line in lines if line.startswith("examples"))
    assert row.split()[-2:] == ["100", "300"]
    assert any(line.startswith("  6 steps %") for line in lines)
    printed = print_prosqa_comparison(str(PROSQA_VALID), n=50, seed=1)
    assert capsys.readouterr().out.strip() == printed.strip()
    assert "shortest paths mean" in printed
