"""Recipes (coconut.recipes): each option of a config's `recipe:` mapping, what it does
to the model's rows or the training sequences, what it refuses, and that the options
in a run resume exactly."""
import os
import random
import shutil

import numpy as np
import pytest

import coconut
from coconut.build import build_method
from coconut.curriculum import CoT
from coconut.recipes import OPTIONS, Recipe
from coconut.run_config import ConfigError
from coconut.train import Trainer, train

from test_train import config, metrics


def test_unknown_options_and_bad_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"test.yaml: recipe: unknown option 'shufle_nodes' \(did you mean "
                                          r"'shuffle_nodes'\?\)"):
        Trainer(config(tmp_path, recipe={"shufle_nodes": True}))
    for key, bad, why in (("embedding_std", 0.0, "must be a finite number > 0"),
                          ("embedding_std", float("inf"), "must be a finite number > 0"),
                          ("embedding_std", float("nan"), "must be a finite number > 0"),
                          ("token_init", "sum", "must be one of"),
                          ("shuffle_nodes", "yes", "must be true or false"),
                          ("predict_past_eot", 1, "must be true or false"),
                          ("lr_decay_epochs", 1.5, "must be an integer >= 1")):
        with pytest.raises(ConfigError, match=f"recipe: {key} {why}"):
            Trainer(config(tmp_path, recipe={key: bad}))
    assert [o.value for o in Recipe().options] == [cls.default for cls in OPTIONS.values()]


def test_rows_of_a_pretrained_model_are_refused(tmp_path):
    for options in ({"embedding_std": 0.1}, {"token_init": "compositional"}):
        with pytest.raises(ValueError, match="a pretrained GPT-2 brings its own"):
            Recipe(options).fits(build_method(config(tmp_path)), None, from_scratch=False)
    Recipe({"embedding_std": 0.02}).fits(build_method(config(tmp_path)), None, from_scratch=False)   # the default


def test_first_stage_epochs_lengthens_stage_zero_of_methods_with_stages(tmp_path):
    method = build_method(config(tmp_path, method="coconut", epochs_per_stage=2, first_stage_epochs=7))
    assert method.first_stage_epochs == 7 and method.stage(6) == 0 and method.stage(7) == 1
    assert build_method(config(tmp_path, first_stage_epochs=3)).stage(3) == 1   # the reference flags
    cot = build_method(config(tmp_path, method="cot", first_stage_epochs=3))
    assert type(cot) is CoT                                   # no stage schedule: not its business
    with pytest.raises(ConfigError, match="method: first_stage_epochs must be a positive integer"):
        build_method(config(tmp_path, method="coconut", first_stage_epochs=0))
    # one way in: not as a recipe option, nor as a method option
    with pytest.raises(ConfigError, match="'first_stage_epochs' is no recipe option: it is a key of its own"):
        Trainer(config(tmp_path, recipe={"first_stage_epochs": 3}))
    with pytest.raises(ConfigError, match="method_options: 'first_stage_epochs' is a key of the config itself"):
        build_method(config(tmp_path, method="coconut", method_options={"first_stage_epochs": 3}))


def test_embedding_std(tmp_path):
    """embedding_std scales the token and position rows from GPT-2's 0.02 (the same draws,
    rescaled), the compositional rows with them; other weights are untouched."""
    kw = dict(tokenization="prosqa_edge_tokens", num_epochs=1)
    plain = Trainer(config(tmp_path, "plain", **kw)).model.params
    wide = Trainer(config(tmp_path, "wide", recipe={"embedding_std": 0.1}, **kw)).model.params
    for name in ("transformer.wte.weight", "transformer.wpe.weight"):
        np.testing.assert_allclose(wide[name], 5 * plain[name], rtol=1e-6)
    for name in ("transformer.h.0.attn.c_attn.weight", "transformer.ln_f.weight"):
        np.testing.assert_array_equal(wide[name], plain[name])
    composed = Trainer(config(tmp_path, "composed", recipe={"embedding_std": 0.1, "token_init": "compositional"},
                              **kw))
    composed_plain = Trainer(config(tmp_path, "composed_plain", recipe={"token_init": "compositional"}, **kw))
    for name in ("transformer.wte.weight", "transformer.wpe.weight"):
        np.testing.assert_allclose(composed.model.params[name], 5 * composed_plain.model.params[name],
                                   rtol=1e-5, atol=1e-9)
    assert abs(float(composed.model.params["transformer.wte.weight"][composed.tok.edge_base:].std()) - 0.1) < 0.005


def test_compositional_token_init(tmp_path):
    """token_init compositional: each edge token's row is the sum of a source and a
    target vector (so any two sources differ by the same vector whatever the target),
    with GPT-2's spread; other rows and the seed's other weights are those of the
    default init."""
    kw = dict(tokenization="prosqa_edge_tokens", num_epochs=1)
    trainer = Trainer(config(tmp_path, recipe={"token_init": "compositional"}, **kw))
    tok, wte = trainer.tok, trainer.model.params["transformer.wte.weight"].astype(np.float64)
    row = lambda a, b: wte[tok._edge_token(a, b)]
    for a, b, c, d in [(0, 1, 2, 3), (5, 9, 31, 7), (4, 4, 0, 0)]:
        np.testing.assert_allclose(row(a, b) - row(a, c) - row(d, b) + row(d, c), 0, atol=1e-7)
    edges = wte[tok.edge_base:]
    assert abs(edges.std() - 0.02) < 0.001
    source_gap = row(1, 0) - row(0, 0)      # a part's vector is random, not zero or shared
    assert abs(np.linalg.norm(source_gap) / np.sqrt(wte.shape[1]) - 0.02) < 0.005
    plain = Trainer(config(tmp_path, "plain", **kw)).model.params
    np.testing.assert_array_equal(wte[:tok.edge_base], plain["transformer.wte.weight"][:tok.edge_base])
    np.testing.assert_array_equal(trainer.model.params["transformer.h.0.attn.c_attn.weight"],
                                  plain["transformer.h.0.attn.c_attn.weight"])
    with pytest.raises(ConfigError, match="token_init.*prosqa_edge_tokens, prontoqa_fact_sentences"):
        Trainer(config(tmp_path, tokenization="prosqa_symbolic", recipe={"token_init": "compositional"}))


@pytest.mark.parametrize("data", [
    dict(tokenization="prosqa_edge_tokens"),
    dict(tokenization="prontoqa_fact_sentences", generate={"dataset": "prontoqa", "n": 24, "val_n": 4, "seed": 0},
         max_new_tokens=8)])
def test_shuffle_nodes_renames_each_epoch_and_resumes_exactly(tmp_path, data):
    """shuffle_nodes: the training sequences get fresh node names (ProntoQA: concept
    names) every epoch (drawn from the epoch's seeded generator, so a resume repeats
    them); validation keeps the official names."""
    kw = dict(data, recipe={"shuffle_nodes": True})
    straight = train(config(tmp_path, "straight", **kw))
    train(config(tmp_path, "split", **{**kw, "num_epochs": 1}))
    resumed = train(config(tmp_path, "split", **kw), resume=1)
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)
    plain = train(config(tmp_path, "plain", **data))
    assert not np.array_equal(straight.model.param_block, plain.model.param_block)

    trainer = Trainer(config(tmp_path, "look", **kw), verbose=False)
    seen = []
    trainer.train_step = lambda micro_batches: seen.extend(s.input_ids for b in micro_batches for s in b) or [(0, 0.0)]
    trainer.train_epoch(0)
    official = [trainer.method.sequence(trainer.tok, ex, 0, random.Random(0)).input_ids for ex in trainer.train_set]
    assert sorted(map(len, seen)) == sorted(map(len, official))
    assert not {tuple(s) for s in seen} & {tuple(s) for s in official}   # every one renamed
    with pytest.raises(ConfigError, match="shuffle_nodes"):
        Trainer(config(tmp_path, tokenization="prontoqa_symbolic", recipe={"shuffle_nodes": True}))


def test_predict_past_eot(tmp_path):
    """predict_past_eot: the label at <eot> becomes the first trained token after it, so
    the loss gains exactly one term, the cross-entropy of the position before <eot> (the
    last thought's, whose state the next stage feeds back) on that token."""
    from coconut.curriculum.sequence import IGNORE
    from coconut.recipes import with_label_past_eot
    trainer = Trainer(config(tmp_path, num_epochs=1, dropout=0.0))
    tok, model, method = trainer.tok, trainer.model, trainer.method
    seq = method.sequence(tok, trainer.train_set[0], 1, random.Random(0))       # stage 1: one thought
    eot = seq.input_ids.index(tok.eot_id)
    past = with_label_past_eot(tok, seq)
    assert past.labels[eot] == seq.input_ids[eot + 1] != IGNORE and seq.labels[eot] == IGNORE
    assert past.labels[:eot] + past.labels[eot + 1:] == seq.labels[:eot] + seq.labels[eot + 1:]
    question_only = type(seq)(seq.input_ids[:eot + 1], [IGNORE] * (eot + 1), seq.n_thoughts)
    assert with_label_past_eot(tok, question_only) is question_only               # nothing trained after <eot>

    kw = dict(thoughts=tok.thought_spec("continuous"))
    ids = np.asarray([seq.input_ids])
    loss, n = model.loss_and_count(ids, np.asarray([seq.labels]), backward=False, **kw)
    loss_past, n_past = model.loss_and_count(ids, np.asarray([past.labels]), backward=False, **kw)
    logits = model.forward(ids, **kw)[0, eot - 1].astype(np.float64)
    term = np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[seq.input_ids[eot + 1]]
    assert n_past == n + 1
    assert abs(loss_past * n_past - (loss * n + term)) < 1e-4 * n_past

    train(config(tmp_path, "past", recipe={"predict_past_eot": True}, num_epochs=2))          # it trains
    # pause as thought: the last pause slot gets the same label (the control without feedback)
    pause = Trainer(config(tmp_path, "pause", method="pause_as_thought", recipe={"predict_past_eot": True}))
    seq = pause.method.sequence(pause.tok, pause.train_set[0], 1, random.Random(0))
    trained = pause.recipe.training_sequence(pause.tok, seq, random.Random(0))
    eot = seq.input_ids.index(pause.tok.eot_id)
    assert seq.input_ids[eot - 1] == pause.tok.latent_id and trained.labels[eot] == seq.input_ids[eot + 1] != IGNORE
    with pytest.raises(ConfigError, match="predict_past_eot.*no thought slots"):
        Trainer(config(tmp_path, recipe={"predict_past_eot": True}, coconut=False, cot=True))


def test_lr_decay_epochs_falls_linearly_over_the_last_epochs_and_resumes_exactly(tmp_path):
    """lr_decay_epochs: 2 of 3 epochs: the step at progress p (epochs) takes lr * min(1,
    (3 - p) / 2). Epoch 1 is the constant-lr run's; the run resumed from its epoch-1
    checkpoint ends on the same bits."""
    recipe = Recipe({"lr_decay_epochs": 2})
    assert [recipe.lr_scale(p, 3) for p in (0.0, 1.0, 2.0, 2.5, 2.8)] == pytest.approx([1, 1, 0.5, 0.25, 0.1])
    assert Recipe().lr_scale(2.9, 3) == 1.0                                           # the reference: constant
    kw = dict(reset_optimizer="never", lr=1e-3)
    constant = train(config(tmp_path, "constant", **kw))
    decayed = train(config(tmp_path, "decayed", recipe={"lr_decay_epochs": 2}, **kw))
    steps = 5                                                                         # 40 examples / 8 per step
    last = [e + (steps - 1) / steps for e in range(3)]                                # each epoch's last step
    assert [l["lr"] for l in metrics(decayed.save_dir)] == pytest.approx([1e-3 * min(1, (3 - p) / 2) for p in last])
    assert [l["lr"] for l in metrics(constant.save_dir)] == [1e-3] * 3
    first = [coconut.GPT2.from_pretrained(os.path.join(r.save_dir, "checkpoint_1")).param_block
             for r in (constant, decayed)]
    assert np.array_equal(*first)
    assert not np.array_equal(constant.model.param_block, decayed.model.param_block)
    split = os.path.join(tmp_path, "split")
    shutil.copytree(decayed.save_dir, split, ignore=shutil.ignore_patterns("checkpoint_2", "checkpoint_3"))
    resumed = train(config(tmp_path, "split", recipe={"lr_decay_epochs": 2}, **kw), resume=1)
    assert np.array_equal(resumed.model.param_block, decayed.model.param_block)
