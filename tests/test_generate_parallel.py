"""Generated data: drawn by several processes it equals what one process draws, and the streams stay pinned."""
import hashlib
import json

import pytest

from coconut.data import example_to_dict, generate, generate_prontoqa, generate_prosqa
import coconut.data.generated as gen


@pytest.mark.parametrize("dataset,serial", [("prosqa", generate_prosqa), ("prontoqa", generate_prontoqa)])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_draw_equals_the_serial_stream(monkeypatch, dataset, serial, workers):
    monkeypatch.setattr(gen, "MIN_PER_WORKER", 4)
    monkeypatch.setattr(gen.os, "cpu_count", lambda: 8)
    drawn = generate(dataset, 25, seed=3, start=7, workers=workers)
    expected = serial(25, 3, start=7)
    assert [example_to_dict(e) for e in drawn] == [example_to_dict(e) for e in expected]


def test_few_examples_stay_in_this_process(monkeypatch):
    def no_pool(*a, **k):
        raise AssertionError("a pool was started")
    monkeypatch.setattr(gen.multiprocessing, "get_context", no_pool)
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
