"""The batch layout of the reference collator, on batches written out by hand."""
import numpy as np
import pytest

from coconut.collate import Batch, collate
from coconut.curriculum import TrainingSequence

PAD, LAT, BOT, EOT = 0, 9, 8, 7
X = -100


def seq(ids, n_untrained):
    return TrainingSequence(ids, [X] * n_untrained + ids[n_untrained:], ids.count(LAT))


def test_mixed_thought_counts_align_first_latent():
    a = seq([11, 12, BOT, LAT, LAT, EOT, 21, 22], 6)           # first latent at 3
    b = seq([11, 12, 13, 14, BOT, LAT, EOT, 23, 24, 25], 7)    # first latent at 5
    c = seq([15, BOT, EOT, 26, 27], 3)                         # no latent (stage 0)
    batch = collate([a, b, c], PAD, LAT)
    assert isinstance(batch, Batch) and batch.shape == (3, 10)
    assert batch.input_ids.tolist() == [
        [PAD, PAD, 11, 12, BOT, LAT, LAT, EOT, 21, 22],
        [11, 12, 13, 14, BOT, LAT, EOT, 23, 24, 25],
        [15, BOT, EOT, 26, 27, PAD, PAD, PAD, PAD, PAD],
    ]
    assert batch.attention_mask.tolist() == [
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    ]
    assert batch.position_ids.tolist() == [
        [0, 0, 0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 0, 0, 0, 0, 0],
    ]
    assert batch.labels.tolist() == [
        [X, X, X, X, X, X, X, X, 21, 22],
        [X, X, X, X, X, X, X, 23, 24, 25],
        [X, X, X, 26, 27, X, X, X, X, X],
    ]
    for arr in (batch.input_ids, batch.attention_mask, batch.position_ids, batch.labels):
        assert arr.dtype == np.int64


def test_left_and_right_padding_together():
    # the row with the latest first latent is short: the others get left pads and it
    # gets right pads; the row whose padded length is largest sets T
    a = seq([1, 2, 3, 4, BOT, LAT, EOT, 5], 7)                 # first latent at 5
    b = seq([6, BOT, LAT, LAT, LAT, EOT, 31, 32, 33, 34], 6)   # first latent at 2 -> 3 left pads
    batch = collate([a, b], PAD, LAT)
    assert batch.input_ids.tolist() == [
        [1, 2, 3, 4, BOT, LAT, EOT, 5, PAD, PAD, PAD, PAD, PAD],
        [PAD, PAD, PAD, 6, BOT, LAT, LAT, LAT, EOT, 31, 32, 33, 34],
    ]
    assert batch.position_ids.tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    ]
    assert batch.attention_mask.tolist() == [[1] * 8 + [0] * 5, [0] * 3 + [1] * 10]
    assert batch.labels.tolist() == [[X] * 7 + [5] + [X] * 5, [X] * 9 + [31, 32, 33, 34]]


def test_batch_without_latents_is_only_right_padded():
    a = seq([1, 2, 3], 1)
    b = seq([4, 5, 6, 7, 8], 2)
    for latent in (LAT, None):
        batch = collate([a, b], 50256, latent)
        assert batch.input_ids.tolist() == [[1, 2, 3, 50256, 50256], [4, 5, 6, 7, 8]]
        assert batch.position_ids.tolist() == [[0, 1, 2, 0, 0], [0, 1, 2, 3, 4]]
        assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
        assert batch.labels.tolist() == [[X, 2, 3, X, X], [X, X, 6, 7, 8]]


def test_latent_id_none_disables_alignment():
    batch = collate([seq([1, LAT, 2], 2), seq([1, 1, 1, LAT], 4)], PAD, None)
    assert batch.input_ids.tolist() == [[1, LAT, 2, PAD], [1, 1, 1, LAT]]


def test_prompts_as_plain_lists():
    # generation prompts: question <bot> <latent>×k <eot>, no labels
    batch = collate([[3, 4, 5, BOT, LAT, LAT, EOT], [6, BOT, LAT, LAT, EOT]], PAD, LAT)
    assert batch.input_ids.tolist() == [[3, 4, 5, BOT, LAT, LAT, EOT], [PAD, PAD, 6, BOT, LAT, LAT, EOT]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 2, 3, 4]]
    assert (batch.labels == X).all()


def test_bad_input():
    with pytest.raises(ValueError):
        collate([], PAD, LAT)
    with pytest.raises(ValueError):
        collate([[]], PAD, LAT)

    class Broken:
        input_ids = [1, 2]
        labels = [1]

    with pytest.raises(ValueError):
        collate([Broken()], PAD, LAT)


def test_real_curriculum_batch_keeps_every_sequence_intact():
    from coconut.curriculum import Coconut
    from coconut.data import official
    from coconut.tokenizer.bpe import GPT2Tokenizer
    from coconut.tokenizer.text import TextTokenization

    tok = TextTokenization(GPT2Tokenizer())
    examples = official("prosqa", "valid")[:12]
    m = Coconut(c_thought=1, epochs_per_stage=5, max_latent_stage=6)
    # stages 0 (no latents), 1, 2 and 7 in one batch
    seqs = [m.sequence(tok, ex, epoch) for ex, epoch in zip(examples, [0, 5, 10, 40] * 3)]
    batch = collate(seqs, tok.eos_id, tok.latent_id)
    columns = {row.tolist().index(tok.latent_id) for row, s in zip(batch.input_ids, seqs) if s.n_thoughts}
    assert len(columns) == 1
    for b, s in enumerate(seqs):
        real = batch.attention_mask[b] == 1
        assert batch.input_ids[b][real].tolist() == s.input_ids
        assert batch.labels[b][real].tolist() == s.labels
        assert batch.position_ids[b][real].tolist() == list(range(len(s.input_ids)))
        assert (batch.labels[b][~real] == X).all() and (batch.input_ids[b][~real] == tok.eos_id).all()
        if s.n_thoughts == 0:     # stage 0 rows are not shifted
            assert real[0]
