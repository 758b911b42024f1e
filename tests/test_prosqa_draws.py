"""The ProsQA generator's C draws against its Python definition: the same questions,
question for question, under the presets' settings, the out-of-distribution splits'
and settings that reach every branch of CPython's random.sample."""
from dataclasses import replace

import pytest

from coconut.data import ProsQASettings, generate_prosqa
from coconut.data import prosqa_generator
from coconut.data.ood import SPLITS


def both(n, seed, **kw):
    c = generate_prosqa(n, seed, engine="c", **kw)
    python = generate_prosqa(n, seed, engine="python", **kw)
    return c, python


def test_the_presets_stream():
    c, python = both(1500, 0, start=36000)   # an epoch's part of prosqa-cpu-thoughts' stream
    assert len(c) == 1500 and c == python


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_the_out_of_distribution_settings(split):
    # the long-path splits reject hundreds of graphs a question: few questions there
    c, python = both(6 if split.startswith("steps") else 150, 4, settings=SPLITS[split])
    assert c == python


def test_other_settings():
    # few nodes (ties between the families' depths drawn by randrange), many parents
    # (thousands of shortest paths to choose from), no restriction to one family
    for s in (replace(ProsQASettings(), grown_nodes=12, min_steps=2),
              replace(ProsQASettings(), mean_parents=4.0, depth_weight=0.5, max_steps=9),
              replace(ProsQASettings(), p_only_entity_family=0.0, p_only_other_family=0.0, min_edges=30)):
        c, python = both(60, 11, settings=s)
        assert c == python


def test_large_pools_take_random_samples_other_branch():
    # pools larger than random.sample's set threshold (21 + 4 ** ceil(log4(3k))) draw
    # by rejection from a set, smaller ones by swapping in a list
    persons = [f"P{i}" for i in range(120)]
    concepts = [f"c{i}pus" for i in range(300)]
    c, python = both(80, 2, person_names=persons, concept_names=concepts)
    assert c == python
    assert {s for ex in c for s in ex.idx_to_symbol} - set(persons) - set(concepts) == set()


def test_pools_too_small_are_named_the_same_way():
    for engine in ("c", "python"):
        with pytest.raises(ValueError, match=r"generate_prosqa: name pools too small for a graph of \d+ nodes"):
            generate_prosqa(5, 0, person_names=["Ann", "Bob"], engine=engine)


def test_bounds_beyond_a_c_int():
    loose = replace(ProsQASettings(), max_nodes=10**12, min_edges=-10**12)   # no bound at all
    c, python = both(30, 1, settings=loose)
    assert c == python == generate_prosqa(30, 1)


def test_settings_no_graph_meets_fail_in_both(monkeypatch):
    for never in (replace(ProsQASettings(), min_nodes=1000), replace(ProsQASettings(), max_parents=0)):
        with pytest.raises(ValueError, match="no graph qualified in 100000 draws"):
            generate_prosqa(1, 0, settings=never, engine="c")
    monkeypatch.setattr(prosqa_generator, "MAX_TRIES", 50)
    with pytest.raises(ValueError, match="no graph qualified in 50 draws"):
        generate_prosqa(1, 0, settings=never, engine="python")
    with pytest.raises(ValueError, match="need 1 <= min_steps <= max_steps, got 0, 6"):
        generate_prosqa(1, 0, settings=replace(ProsQASettings(), min_steps=0))


def test_the_cycle_collector_is_left_as_it_was():
    import gc
    assert gc.isenabled()
    generate_prosqa(3, 0)
    assert gc.isenabled()
    gc.disable()
    try:
        generate_prosqa(3, 0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_unknown_engine():
    with pytest.raises(ValueError, match="engine must be 'c' or 'python', got 'rust'"):
        generate_prosqa(1, 0, engine="rust")
