"""The methods whose thoughts have parameters: soft_thoughts (Coconut's curriculum with
soft thoughts, a temperature) and pccot (a fixed block of Jacobi thoughts, a number of
iterations). Their layouts and specs, and for each a tiny ProsQA run end to end: from
YAML and from Python, the loss falls, a resume is bitwise, `coconut eval --k-sweep`
decodes with the method's own spec, a bad option is a one-line ConfigError."""
import os

import numpy as np
import pytest
import yaml

import coconut
from coconut.cli import main
from coconut.curriculum import (METHODS, Coconut, NoCurriculum, PCCoT, SoftThoughts, make_method)
from coconut.data import generate_prosqa
from coconut.evaluate import evaluate, k_sweep, sweep_thoughts
from coconut.run_config import ConfigError
from coconut.stop_classifier import StopClassifier
from coconut.tokenizer.symbolic import ProsQASymbolic
from coconut.train import Trainer, train

from test_train import BASE, config, metrics

TOK = ProsQASymbolic(max_nodes=32)
EXAMPLES = generate_prosqa(6, seed=3)
IDS = dict(latent_id=TOK.latent_id, bot_id=TOK.bot_id, eot_id=TOK.eot_id)

# name, option, a good value, the object with it, a bad value, the spec mode
# (the objects with test_train's BASE keys, which a method given as an object does not read)
CASES = [("soft_thoughts", "temperature", 0.5,
          SoftThoughts(temperature=0.5, epochs_per_stage=1, max_latent_stage=2, pad_latent_to_max=True), -1.0, "soft"),
         ("pccot", "iterations", 2, PCCoT(iterations=2, max_latent_stage=2), 0, "jacobi")]


def test_registered_with_their_thought_specs():
    assert METHODS["soft_thoughts"] is SoftThoughts and METHODS["pccot"] is PCCoT
    assert make_method("soft_thoughts").thought_spec(TOK) == coconut.ThoughtSpec("soft", **IDS, temperature=1.0)
    assert SoftThoughts(temperature=0.25).thought_spec(TOK) == coconut.ThoughtSpec("soft", **IDS, temperature=0.25)
    assert make_method("pccot").thought_spec(TOK) == coconut.ThoughtSpec("jacobi", **IDS, iterations=3)
    assert PCCoT(iterations=5).thought_spec(TOK) == coconut.ThoughtSpec("jacobi", **IDS, iterations=5)
    # the methods without parameters: the mode's defaults, as before
    assert Coconut().thought_spec(TOK) == TOK.thought_spec("continuous")


@pytest.mark.parametrize("cls,option,bad", [(SoftThoughts, "temperature", 0), (SoftThoughts, "temperature", -1.0),
                                            (SoftThoughts, "temperature", float("inf")),
                                            (SoftThoughts, "temperature", True), (PCCoT, "iterations", 0),
                                            (PCCoT, "iterations", 1.5), (PCCoT, "iterations", True)])
def test_bad_options_are_refused(cls, option, bad):
    with pytest.raises(ValueError, match=f"^{option} must be"):
        cls(**{option: bad})


def test_soft_thoughts_lay_out_as_coconut():
    soft, plain = SoftThoughts(temperature=0.5, max_latent_stage=2, epochs_per_stage=1), \
        Coconut(max_latent_stage=2, epochs_per_stage=1)
    for epoch in range(4):
        assert soft.stage(epoch) == plain.stage(epoch) and soft.optimizer_reset(epoch) == plain.optimizer_reset(epoch)
        for ex in EXAMPLES:
            assert soft.sequence(TOK, ex, epoch) == plain.sequence(TOK, ex, epoch)
            assert soft.prompt_ids(TOK, ex, epoch) == plain.prompt_ids(TOK, ex, epoch)


def test_pccot_is_the_padded_final_stage_from_epoch_0():
    pccot = PCCoT(max_latent_stage=3)
    fixed = NoCurriculum(max_latent_stage=3, pad_latent_to_max=True)
    assert pccot.max_thoughts == 3 and pccot.reset_optimizer == "never"
    for epoch in (0, 1, 7):
        for ex in EXAMPLES:
            seq = pccot.sequence(TOK, ex, epoch)
            assert seq == fixed.sequence(TOK, ex, epoch) and seq.n_thoughts == 3
            assert pccot.prompt_ids(TOK, ex, epoch) == fixed.prompt_ids(TOK, ex, epoch)
    # curriculum: true gives Coconut's step removal, with Jacobi thoughts
    staged = PCCoT(max_latent_stage=3, epochs_per_stage=1, curriculum=True)
    assert [staged.stage(e) for e in range(5)] == [0, 1, 2, 3, 4]
    assert staged.sequence(TOK, EXAMPLES[0], 0).n_thoughts == 0 and staged.thought_spec(TOK).mode == "jacobi"


def decoded_thoughts(monkeypatch) -> list:
    """The list that every later `GPT2.generate` call adds its ThoughtSpec to."""
    seen, generate = [], coconut.GPT2.generate

    def spy(self, prompts, max_new_tokens, **decode):
        seen.append(decode["thoughts"])
        return generate(self, prompts, max_new_tokens, **decode)

    monkeypatch.setattr(coconut.GPT2, "generate", spy)
    return seen


def test_evaluate_and_k_sweep_run_the_methods_spec(monkeypatch):
    model = coconut.GPT2(coconut.GPT2Config(vocab_size=TOK.vocab_size, n_positions=128, n_embd=16, n_layer=1,
                                            n_head=2), seed=0)
    seen = decoded_thoughts(monkeypatch)
    method = SoftThoughts(temperature=0.5, max_latent_stage=2)
    evaluate(model, TOK, method, EXAMPLES, 4)
    k_sweep(model, TOK, EXAMPLES, ks=[0, 1], max_new_tokens=4, thoughts=sweep_thoughts(TOK, method))
    assert seen == [method.thought_spec(TOK)] * 3
    # a mode name still means that mode's defaults; a number of thoughts alone, continuous ones
    evaluate(model, TOK, method, EXAMPLES, 4, thoughts="soft")
    evaluate(model, TOK, 1, EXAMPLES, 4)
    assert seen[3:] == [TOK.thought_spec("soft"), TOK.thought_spec("continuous")]
    assert sweep_thoughts(TOK, make_method("cot")) == TOK.thought_spec("continuous")


@pytest.mark.parametrize("method", [SoftThoughts(), PCCoT()], ids=["soft", "jacobi"])
def test_stop_classifier_reads_continuous_thoughts_only(method):
    with pytest.raises(ValueError, match=f"the stop classifier reads continuous thoughts; method {method.name} "
                                         f"has {method.thought_mode} thoughts$"):
        StopClassifier().fit(None, TOK, EXAMPLES, 2, method=method)


def write_yaml(path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("name,option,value,obj,bad,mode", CASES, ids=[c[0] for c in CASES])
def test_trains_resumes_and_sweeps(tmp_path, capsys, monkeypatch, name, option, value, obj, bad, mode):
    kw = dict(method=name, method_options={option: value}, recipe={"predict_past_eot": True})
    # from Python, with the method as an object
    straight = train(config(tmp_path, "straight", recipe={"predict_past_eot": True}), method=obj)
    lines = metrics(straight.save_dir)
    assert [l["epoch"] for l in lines] == [1, 2, 3]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]                     # it learns
    # from YAML by name, stopped after 2 epochs and resumed: bitwise the straight run
    first = train(config(tmp_path, "split", **{**kw, "num_epochs": 2}))
    resumed = train(config(tmp_path, "split", **kw), resume=2)
    assert not np.array_equal(first.model.param_block, resumed.model.param_block)
    assert np.array_equal(straight.model.param_block, resumed.model.param_block)
    assert metrics(straight.save_dir)[-1]["val_loss"] == metrics(resumed.save_dir)[-1]["val_loss"]
    trainer = Trainer(config(tmp_path, "spec", **kw))
    assert trainer.thoughts == obj.thought_spec(trainer.tok) and trainer.thoughts.mode == mode
    assert getattr(trainer.thoughts, option) == value

    # coconut eval --k-sweep: k = 0..the method's two thoughts, each with the method's spec
    cfg = write_yaml(tmp_path / f"{name}.yaml", {**BASE, **kw, "save_path": str(tmp_path), "name": "split"})
    seen = decoded_thoughts(monkeypatch)
    capsys.readouterr()
    assert main(["eval", cfg, "--k-sweep"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in table[1:]] == ["0", "1", "2"]
    assert seen and all(s == trainer.thoughts for s in seen)
    # the stop classifier reads continuous thoughts only: refused by name; the probe reads
    # these thoughts with the method's own spec
    assert main(["eval", cfg, "--adaptive"]) == 2
    assert f"reads continuous thoughts; method {name} has {mode} thoughts" in capsys.readouterr().err
    assert main(["eval", cfg, "--probe"]) == 0
    assert "latent value probe on" in capsys.readouterr().out

    # a bad option: one line naming it, from YAML and from the command line
    with pytest.raises(ConfigError) as e:
        Trainer(config(tmp_path, "bad", method=name, method_options={option: bad}))
    assert "\n" not in str(e.value) and f"method: {option} must be" in str(e.value)
    assert main(["train", cfg, "--set", f"method_options.{option}={bad}", "--set", "name=bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{option} must be" in err
    assert not os.path.exists(tmp_path / "bad")


def test_soft_thoughts_refuse_bf16_before_training(tmp_path):
    with pytest.raises(ConfigError, match="bf16: method soft_thoughts has soft thoughts, which run in fp32 only"):
        Trainer(config(tmp_path, method="soft_thoughts", bf16=True))
