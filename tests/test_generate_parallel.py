"""Generated data: drawn by several processes it equals what one process draws, and the streams stay pinned."""
import hashlib
import json

import pytest

from coconut.data import example_to_dict, generate, generate_prontoqa, generate_prosqa
import coconut.forked as forked


@pytest.mark.parametrize("dataset,serial", [("prosqa", generate_prosqa), ("prontoqa", generate_prontoqa)])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_draw_equals_the_serial_stream(monkeypatch, dataset, serial, workers):
    monkeypatch.setattr(forked, "MIN_PER_WORKER", 4)
    monkeypatch.setattr(forked.os, "cpu_count", lambda: 8)
    drawn = generate(dataset, 25, seed=3, start=7, workers=workers)
    expected = serial(25, 3, start=7)
    assert [example_to_dict(e) for e in drawn] == [example_to_dict(e) for e in expected]


def test_few_examples_stay_in_this_process(monkeypatch):
    def no_pool(*a, **k):
        raise AssertionError("a pool was started")
    monkeypatch.setattr(forked.multiprocessing, "get_context", no_pool)
    assert len(generate("prosqa", 10, seed=0, workers=4)) == 10   # under MIN_PER_WORKER per worker


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown generated dataset 'gsm8k'; known: prontoqa, prosqa"):
        generate("gsm8k", 10, seed=0)


def _digest(examples):
    return hashlib.sha256(json.dumps([example_to_dict(e) for e in examples], sort_keys=True).encode()).hexdigest()


def test_the_streams_are_pinned():
    """Runs, presets and recorded results depend on these streams staying what they were
    when recorded: a faster generator must draw the same examples."""
    assert _digest(generate_prosqa(200, 0)) == "05f30554d58292fdb4e1b46be2492447fdaafbd3b80aa20c504d67faaedf7744"
    assert _digest(generate_prosqa(50, 7, start=5000)) == \
        "9d520eff1a4368e4bd13769f100f224d8e410a24f49528f2a944c0941529ab2f"
    assert _digest(generate_prontoqa(100, 0)) == "1b2f53ba546cf2888f2ae3e94697f8d048568b86fd7219468638b8121cc56f69"


def test_encoding_on_several_processes_equals_encoding_here(monkeypatch):
    from coconut.tokenizer.prosqa import ProsQAEdgeTokens
    monkeypatch.setattr(forked, "MIN_PER_WORKER", 5)
    monkeypatch.setattr(forked.os, "cpu_count", lambda: 8)
    examples = generate_prosqa(23, 1)
    here, there = ProsQAEdgeTokens(), ProsQAEdgeTokens()
    there.encode_all(examples + examples[:3], workers=3)   # a repeated example is encoded once
    assert len(there._entries) == 23
    for ex in examples:
        assert there.question_ids(ex) == here.question_ids(ex) and there.answer_ids(ex) == here.answer_ids(ex)
        assert [there.step_ids(ex, i) for i in range(there.n_steps(ex))] == \
            [here.step_ids(ex, i) for i in range(here.n_steps(ex))]


def test_an_example_that_fails_to_encode_fails_where_it_is_used(monkeypatch):
    from coconut.tokenizer.prosqa import ProsQASymbolic
    monkeypatch.setattr(forked, "MIN_PER_WORKER", 5)
    monkeypatch.setattr(forked.os, "cpu_count", lambda: 8)
    examples = generate_prosqa(20, 2)
    examples[17].steps[0] = "Nothing is an edge here."
    tok = ProsQASymbolic()
    tok.encode_all(examples, workers=2)
    assert len(tok._entries) == 19
    with pytest.raises(ValueError, match="ProsQASymbolic: example .* step 0 'Nothing is an edge here.' is not an edge"):
        tok.question_ids(examples[17])
