"""The loss's row plan (csrc/row_plan.c) as _C.row_plan reports it, against the rule
stated once more in NumPy: which cells keep an activation row, which have their output
read, the passes, and attention's keys and queries per pass and example."""
import numpy as np
import pytest

from coconut import _C

from coconut.reference import torch_coconut as tr

EOS, BOT, EOT, LAT = 96, 97, 98, 99
THOUGHTS = dict(latent_id=LAT, bot_id=BOT, eot_id=EOT)
MODES = _C.THOUGHT_MODES


def numpy_plan(ids, mask, labels, continuous, n_layer):
    """A cell's output is read if the next label is supervised or the next input is a
    thought; a cell keeps a row if it is read, or unmasked with a read output at or after
    it in its example. Passes start at every thought position."""
    B, T = ids.shape
    mask = mask.astype(bool)
    thought = (ids == LAT) if continuous else np.zeros_like(mask)
    read = np.zeros_like(mask)
    read[:, :-1] = thought[:, 1:]
    if labels is not None:
        read[:, :-1] |= labels[:, 1:] != -100
    later = np.flip(np.maximum.accumulate(np.flip(read, 1), 1), 1)
    keep = read | (mask & later)
    out = read if n_layer > 0 else keep
    bounds = [0] + [t for t in range(1, T) if thought[:, t].any()] + [T]
    key, query, out_query = mask & keep, mask & keep, mask & out
    keys = np.array([key[:, :t1].sum(1) for t1 in bounds[1:]])
    queries = np.array([query[:, t0:t1].sum(1) for t0, t1 in zip(bounds[:-1], bounds[1:])])
    out_queries = np.array([out_query[:, t0:t1].sum(1) for t0, t1 in zip(bounds[:-1], bounds[1:])])
    return dict(bounds=bounds, rows=int(keep.sum()), out_rows=int(out.sum()), keys=keys, queries=queries,
                out_queries=out_queries)


def padded_batch(counts, seed):
    """Examples with k thoughts each, collated as the reference does (left pads align the
    first thoughts, right pads to the longest), plus one unsupervised example."""
    rng = np.random.default_rng(seed)
    exs = []
    for k in counts:
        q = rng.integers(0, 96, size=int(rng.integers(1, 6))).tolist()
        tail = rng.integers(0, 96, size=int(rng.integers(1, 7))).tolist() + [EOS]
        labels = [-100] * (len(q) + k + 2) + [t if rng.random() < 0.8 else -100 for t in tail]
        exs.append({"input_ids": q + [BOT] + [LAT] * k + [EOT] + tail, "labels": labels})
    exs.append({"input_ids": rng.integers(0, 96, size=3).tolist(), "labels": [-100] * 3})
    b = tr.reference_collate(exs, LAT, pad_id=EOS)
    return tuple(b[k].numpy() for k in ("input_ids", "attention_mask", "labels"))


def assert_plan(got, want):
    assert list(got["bounds"]) == want["bounds"]
    assert (got["rows"], got["out_rows"]) == (want["rows"], want["out_rows"])
    for k in ("keys", "queries", "out_queries"):
        assert got[k].dtype == np.int64 and got[k].shape == want[k].shape, k
        assert np.array_equal(got[k], want[k]), k


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_layer", [0, 1, 3])
@pytest.mark.parametrize("mode", ["continuous", "pause", "none"])
def test_counts_follow_the_rule(seed, n_layer, mode):
    counts = [(0, 2, 3), (1,), (4, 4, 1, 0), (2, 3)][seed % 4]
    ids, mask, labels = padded_batch(counts, seed)
    got = _C.row_plan(ids, mask, labels, mode=MODES[mode], n_layer=n_layer, **THOUGHTS)
    assert_plan(got, numpy_plan(ids, mask, labels, mode == "continuous", n_layer))


def test_a_small_batch_by_hand():
    # example 0: thoughts at 2, 3; example 1: two pads, a thought at 4
    ids = np.array([[5, BOT, LAT, LAT, EOT, 7, 8], [EOS, EOS, 5, BOT, LAT, EOT, 9]])
    mask = np.array([[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    labels = np.array([[-100] * 5 + [7, 8], [-100] * 6 + [9]])
    got = _C.row_plan(ids, mask, labels, mode=MODES["continuous"], n_layer=2, **THOUGHTS)
    # rows: positions 0-5 of example 0 (6 reads nothing after it), 2-5 of example 1;
    # read: 1, 2, 4, 5 of example 0 and 3, 5 of example 1
    assert_plan(got, dict(bounds=[0, 2, 3, 4, 7], rows=10, out_rows=6,
                          keys=np.array([[2, 0], [3, 1], [4, 2], [6, 4]]),
                          queries=np.array([[2, 0], [1, 1], [1, 1], [2, 2]]),
                          out_queries=np.array([[1, 0], [1, 0], [0, 1], [2, 1]])))


def test_without_labels_only_thoughts_are_read():
    ids, mask, labels = padded_batch((2, 1), 3)
    got = _C.row_plan(ids, mask, mode=MODES["continuous"], n_layer=2, **THOUGHTS)
    assert_plan(got, numpy_plan(ids, mask, None, True, 2))
    assert got["out_rows"] == int((ids == LAT).sum())


def test_bad_thought_layout_and_shapes_raise():
    ids = np.array([[5, LAT, EOT, 7]])
    with pytest.raises(ValueError, match="outside a <bot> ... <eot> span"):
        _C.row_plan(ids, np.ones_like(ids), mode=MODES["continuous"], **THOUGHTS)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        _C.row_plan(ids, np.ones((1, 3), dtype=np.int64))
