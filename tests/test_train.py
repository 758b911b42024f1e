"""The trainer end to end on ~40 generated ProsQA examples with the symbolic
tokenization: loss goes down, metrics and checkpoints are written, a resumed run ends
bitwise where an uninterrupted one does, optimizer resets follow the rule, and bad
data fails before any training."""
import json
import random
import os
import signal

import numpy as np
import pytest

import coconut
from coconut.data import generate_prosqa
from coconut.run_config import ConfigError, config_from_dict
from coconut.train import Trainer, train

BASE = dict(generate={"dataset": "prosqa", "n": 40, "val_n": 6, "seed": 0}, tokenization="prosqa_symbolic",
            init="scratch", n_layer=2, n_head=2, n_embd=32, n_positions=256, dropout=0.1, coconut=True,
            c_thought=1, epochs_per_stage=1, max_latent_stage=2, pad_latent_to_max=True, num_epochs=3,
            batch_size_training=8, gradient_accumulation_steps=1, lr=3e-3, max_new_tokens=6,
            eval_batch_size=8, threads=1)


def config(tmp_path, name="run", **kw):
    return config_from_dict({**BASE, "save_path": str(tmp_path), "name": name, **kw}, source="test.yaml")


def metrics(save_dir):
    with open(os.path.join(save_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_end_to_end_run_writes_metrics_and_checkpoints(tmp_path):
    result = train(config(tmp_path), )
    lines = metrics(result.save_dir)
    assert [l["epoch"] for l in lines] == [1, 2, 3] and [l["stage"] for l in lines] == [0, 1, 2]
    assert [l["mean_thoughts"] for l in lines] == [0.0, 1.0, 2.0]   # validation prompts: one more per stage
    assert lines[-1]["train_loss"] < lines[0]["train_loss"] - 0.3   # it learns
    assert lines[-1]["val_loss"] < lines[0]["val_loss"]
    for l in lines:
        assert 0.0 <= l["val_accuracy"] <= 1.0 and l["tokens_per_s"] > 0 and l["global_step"] % 5 == 0
        assert l["optimizer_reset"] is True          # the reference: a fresh AdamW every epoch
    assert lines[-1]["global_step"] == 15           # 40 examples / 8 per step, 3 epochs
    # where the time went: every epoch trains, validates and checkpoints; setup comes before
    for l in lines:
        assert {"data", "collate", "step", "optimizer", "validation_loss", "generation", "checkpoint"} \
            <= set(l["seconds"]) and "setup" not in l["seconds"]
    assert result.phase_seconds["setup"] > 0
    assert sum(result.phase_seconds.values()) - result.phase_seconds["setup"] <= result.seconds
    for phase, total in result.phase_seconds.items():
        if phase != "setup":
            assert total == pytest.approx(sum(l["seconds"].get(phase, 0.0) for l in lines), abs=1e-3)
    best = json.load(open(os.path.join(result.save_dir, "best.json")))
    assert best["accuracy"] == max(l["val_accuracy"] for l in lines) == result.best_accuracy
    for n in (1, 2, 3):
        ckpt = os.path.join(result.save_dir, f"checkpoint_{n}")
        assert sorted(os.listdir(ckpt)) == ["SHA256SUMS", "config.json", "model.safetensors", "optimizer.npz",
                                            "trainer_state.json"]
    state = json.load(open(os.path.join(result.save_dir, "checkpoint_3", "trainer_state.json")))
    assert state["epoch"] == 3 and state["step_in_epoch"] == 0 and state["global_step"] == 15
    assert state["dropout_calls"] == result.model.dropout_calls == 15
    assert state["tokenization"] == {"kind": "prosqa_symbolic", "max_nodes": 32}
    back = coconut.GPT2.from_pretrained(os.path.join(result.save_dir, "checkpoint_3"))
    assert np.array_equal(back.param_block, result.model.param_block)
    assert not [e for e in os.listdir(result.save_dir) if e.startswith(".")]   # no temporary leftovers


def test_bf16_run_trains_the_bf16_model_and_says_so(tmp_path):
    """`bf16: true` reaches the model (training and evaluation) and every epoch line names
    the path; the fp32 master weights differ from an fp32 run's after one epoch."""
    bf16 = train(config(tmp_path, "bf16", num_epochs=1, bf16=True))
    fp32 = train(config(tmp_path, "fp32", num_epochs=1))
    assert bf16.model.bf16 and not fp32.model.bf16
    assert metrics(bf16.save_dir)[0]["precision"] == f"bf16 ({coconut.blas_info()['bf16']})"
    assert metrics(fp32.save_dir)[0]["precision"] == "fp32"
    assert bf16.model.param_block.dtype == np.float32
    assert not np.array_equal(bf16.model.param_block, fp32.model.param_block)
    assert abs(metrics(bf16.save_dir)[0]["train_loss"] - metrics(fp32.save_dir)[0]["train_loss"]) < 0.05


def test_resume_is_bitwise_exact(tmp_path):
    # dropout on, moments kept across epochs, accumulation: everything a resume must restore
    kw = dict(reset_optimizer="never", gradient_accumulation_steps=2, batch_size_training=4)
    straight = train(config(tmp_path, "straight", **kw))
    first = train(config(tmp_path, "split", **{**kw, "num_epochs": 2}))
    after_two = first.model.param_block.copy()
    resumed = train(config(tmp_path, "split", **kw), resume=2)
    assert not np.array_equal(after_two, resumed.model.param_block)
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)
    assert resumed.model.dropout_calls == straight.model.dropout_calls
    assert [l["val_loss"] for l in metrics(straight.save_dir)][-1] == metrics(resumed.save_dir)[-1]["val_loss"]


def test_ctrl_c_stops_with_a_checkpoint_and_resumes_exactly(tmp_path):
    kw = dict(reset_optimizer="never", num_epochs=2)
    straight = train(config(tmp_path, "straight", **kw))
    trainer = Trainer(config(tmp_path, "stopped", **kw))
    step, calls = trainer.optimizer.step, []

    def step_then_interrupt():
        step()
        calls.append(1)
        if len(calls) == 7:              # the third step of epoch 2: a real SIGINT
            os.kill(os.getpid(), signal.SIGINT)

    trainer.optimizer.step = step_then_interrupt
    stopped = trainer.run()
    assert stopped.interrupted and len(calls) == 7
    assert sorted(e for e in os.listdir(stopped.save_dir) if e.startswith("checkpoint")) == \
        ["checkpoint_1", "checkpoint_1_step2"]
    resumed = train(config(tmp_path, "stopped", **kw), resume="latest")
    assert not resumed.interrupted
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)


@pytest.mark.parametrize("rule,expected", [("epoch", [0, 1, 2, 3]), ("stage", [0, 2]), ("never", [0])])
def test_optimizer_reset_rule(tmp_path, rule, expected):
    cfg = config(tmp_path, rule, reset_optimizer=rule, epochs_per_stage=2, num_epochs=4, debug=True,
                 generate={"dataset": "prosqa", "n": 16, "val_n": 2, "seed": 0})
    trainer = Trainer(cfg, verbose=False)
    resets, reset = [], trainer.optimizer.reset
    trainer.optimizer.reset = lambda: (resets.append(trainer.epoch), reset())[1]
    trainer.run()
    assert resets == expected
    # AdamW's step count restarts at each reset: 2 steps per epoch since the last one
    assert trainer.optimizer.step_count == 2 * (4 - expected[-1])
    assert not os.path.exists(os.path.join(str(tmp_path), rule, "checkpoint_1"))   # debug: no checkpoints


def test_too_long_example_fails_before_training(tmp_path):
    cfg = config(tmp_path, "short", n_positions=100)
    with pytest.raises(ConfigError) as e:
        Trainer(cfg)
    msg = str(e.value)
    assert "generated prosqa (seed 0) training set: example" in msg and "n_positions = 100" in msg
    assert "tokens at stage 0, more than n_positions = 100" in msg
    assert not os.path.exists(cfg.save_dir)   # nothing written


def test_prompt_plus_new_tokens_must_fit(tmp_path):
    cfg = config(tmp_path, "gen", max_new_tokens=200)
    with pytest.raises(ConfigError, match=r"validation set: example \d+ is too long: its prompt .* max_new_tokens = 200"):
        Trainer(cfg)


def test_an_existing_run_is_not_overwritten_and_resume_needs_the_same_config(tmp_path):
    train(config(tmp_path, "once", num_epochs=1))
    with pytest.raises(ConfigError, match="already holds checkpoints .*checkpoint_1.*--resume"):
        Trainer(config(tmp_path, "once", num_epochs=2))
    with pytest.raises(ConfigError, match=r"config changed \(lr: 0.003 -> 0.01\)"):
        Trainer(config(tmp_path, "once", num_epochs=2, lr=1e-2), resume=1)
    with pytest.raises(ConfigError, match="checkpoint_5 does not exist .*checkpoint_1"):
        Trainer(config(tmp_path, "once", num_epochs=6), resume=5)


def test_pretrained_gpt2_grows_by_the_thought_tokens_copied_from_lt_lt(tmp_path, monkeypatch):
    gpt2 = coconut.GPT2(coconut.GPT2Config(1, 2, 16, 50257, 1024), seed=7)
    gpt2.save_pretrained(str(tmp_path / "gpt2"))
    base = dict(generate={"dataset": "prosqa", "n": 2, "val_n": 1, "seed": 0}, init="pretrained",
                model_id=str(tmp_path / "gpt2"), tokenization="gpt2", num_epochs=1, debug=True)
    trainer = Trainer(config_from_dict({**base, "coconut": True}), verbose=False)
    wte = trainer.model.params["transformer.wte.weight"]
    assert wte.shape == (50260, 16) and (trainer.tok.bot_id, trainer.tok.latent_id) == (50257, 50259)
    assert np.array_equal(wte[:50257], gpt2.params["transformer.wte.weight"])
    for row in (50257, 50258, 50259):
        assert np.array_equal(wte[row], gpt2.params["transformer.wte.weight"][16791])
    pause = Trainer(config_from_dict({**base, "method": "pause_token"}), verbose=False)
    assert pause.model.config.vocab_size == 50261 and pause.tok.pause_id == 50260
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))   # not the user's cache
    with pytest.raises(ConfigError, match="model_id: 'openai-community/gpt2' is not a local Hugging Face"):
        Trainer(config_from_dict({**base, "model_id": "openai-community/gpt2"}))


def test_resume_epoch_from_load_model_path_as_the_reference(tmp_path):
    first = train(config(tmp_path, "cot", num_epochs=1, coconut=False, cot=True))
    cfg = config(tmp_path, "coconut", load_model_path=os.path.join(first.save_dir, "checkpoint_1"), resume=2,
                 num_epochs=3)
    trainer = Trainer(cfg, verbose=False)
    assert trainer.epoch == 2 and trainer.optimizer.step_count == 0 and trainer.model.dropout_calls == 0
    assert np.array_equal(trainer.model.param_block, first.model.param_block)
    result = trainer.run()
    assert [l["stage"] for l in result.history] == [2]
    assert sorted(e for e in os.listdir(result.save_dir) if e.startswith("checkpoint")) == ["checkpoint_3"]


def test_edge_token_run_trains_and_resumes(tmp_path):
    """tokenization prosqa_edge_tokens: the model gets the pair vocabulary, the checkpoint
    records the kind, and a resume rebuilds the same tokenization."""
    first = train(config(tmp_path, tokenization="prosqa_edge_tokens", num_epochs=1))
    assert first.model.config.vocab_size == 41 + 32 * 32
    with open(os.path.join(first.save_dir, "checkpoint_1", "trainer_state.json")) as f:
        assert json.load(f)["tokenization"] == {"kind": "prosqa_edge_tokens", "max_nodes": 32}
    resumed = train(config(tmp_path, tokenization="prosqa_edge_tokens", num_epochs=2), resume=1)
    assert [m["epoch"] for m in metrics(resumed.save_dir) if "epoch" in m] == [1, 2]


@pytest.mark.parametrize("kind, token_init", [("prontoqa_fact_sentences", "normal"),
                                              ("prontoqa_fact_sentences", "compositional")])
def test_fact_token_run_trains_and_resumes(tmp_path, kind, token_init):
    kw = dict(generate={"dataset": "prontoqa", "n": 24, "val_n": 4, "seed": 0}, tokenization=kind, max_new_tokens=8,
              recipe={"token_init": token_init})
    first = train(config(tmp_path, num_epochs=1, **kw))
    with open(os.path.join(first.save_dir, "checkpoint_1", "trainer_state.json")) as f:
        saved = json.load(f)["tokenization"]
    assert saved["kind"] == kind and saved["facts"]
    assert first.model.config.vocab_size == 7 + len(saved["words"]) + len(saved["facts"])
    resumed = train(config(tmp_path, num_epochs=2, **kw), resume=1)
    assert [m["epoch"] for m in metrics(resumed.save_dir) if "epoch" in m] == [1, 2]


def test_fresh_each_epoch_trains_on_new_questions_and_resumes_exactly(tmp_path):
    """generate.fresh_each_epoch: epoch e >= 1 draws its own n examples from the stream,
    after the training and validation ones, so no question repeats; a resume redraws
    the same ones."""
    fresh = {**BASE["generate"], "fresh_each_epoch": True}
    trainer = Trainer(config(tmp_path, "look", generate=fresh), verbose=False)
    stream = generate_prosqa(40 + 6 + 2 * 40, seed=0)
    assert trainer.training_set(0) == stream[:40] and trainer.val_set == stream[40:46]
    assert trainer.data.ahead[0] == 1   # data_ahead: epoch 1's questions are being drawn by a forked process
    assert trainer.training_set(1) == stream[46:86] and trainer.training_set(2) == stream[86:]
    assert trainer.data.ahead is None   # nothing after the last epoch
    seen = []
    trainer.train_step = lambda micro_batches: seen.extend(s.input_ids for b in micro_batches for s in b) or [(0, 0.0)]
    trainer.train_epoch(1)
    assert sorted(seen) == sorted(trainer.method.sequence(trainer.tok, ex, 1, random.Random(0)).input_ids
                                  for ex in stream[46:86])

    straight = train(config(tmp_path, "straight", generate=fresh))
    train(config(tmp_path, "split", generate=fresh, num_epochs=2))
    resumed = train(config(tmp_path, "split", generate=fresh), resume=2)
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)
    plain = train(config(tmp_path, "plain"))
    assert not np.array_equal(straight.model.param_block, plain.model.param_block)
    drawn_in_step = train(config(tmp_path, "in-step", generate=fresh, data_ahead=False))
    assert np.array_equal(straight.model.param_block, drawn_in_step.model.param_block)
    for ahead in (True, False):   # a question too long is named by its epoch, drawn ahead or not
        short = Trainer(config(tmp_path, f"short-{ahead}", generate=fresh, data_ahead=ahead), verbose=False)
        short.data.n_positions = 20
        short.training_set(0)
        with pytest.raises(ConfigError, match="training set of epoch 2: example 0 is too long"):
            short.training_set(1)
    with pytest.raises(ConfigError, match="fresh_each_epoch needs a fixed vocabulary"):
        Trainer(config(tmp_path, tokenization="prontoqa_symbolic", generate={**fresh, "dataset": "prontoqa"}))


def test_each_epochs_data_is_built_out_of_the_collectors_sight_and_given_back(tmp_path):
    """The data phase runs with the cycle collector off and freezes what it built; the run
    hands everything back to the collector when it ends, the collector as it found it."""
    import gc
    fresh = {**BASE["generate"], "fresh_each_epoch": True}
    trainer = Trainer(config(tmp_path, "gc", generate=fresh), verbose=False)
    seen, frozen = [], []
    real_training_set = trainer.training_set

    def training_set(epoch):
        seen.append(gc.isenabled())
        return real_training_set(epoch)

    def train_step(micro_batches):
        frozen.append(gc.get_freeze_count())
        return [(0, 0.0)]
    trainer.training_set, trainer.train_step = training_set, train_step
    assert gc.isenabled() and gc.get_freeze_count() == 0
    trainer.train_epoch(1)   # an epoch outside a run freezes nothing: nothing would give it back
    assert seen == [False] and max(frozen) == 0 and gc.get_freeze_count() == 0
    outside = len(frozen)
    trainer.run()
    assert seen == [False] * 4
    assert min(frozen[outside:]) > 1000   # the run's objects and each epoch's data, while it trained
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # a process that froze objects of its own keeps them frozen, and no more
    gc.freeze()
    try:
        held = gc.get_freeze_count()
        Trainer(config(tmp_path, "gc-held", generate=fresh), verbose=False).run()
        # none given back, none added (frozen objects the run dropped are freed as ever)
        assert held - 100 < gc.get_freeze_count() <= held
    finally:
        gc.unfreeze()
