"""Generated data drawn by several processes equals what one process draws."""
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
