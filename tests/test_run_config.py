"""RunConfig: the reference's YAML files load unchanged, our keys are checked, and every
bad input is one ConfigError naming the file and the key (and line)."""
import os

import pytest

from coconut.curriculum import Coconut, CoT, ICoT, NoCoT, NoCurriculum, NoThought, PauseAsThought, PauseToken
from coconut.data import official, official_path
from coconut.run_config import ConfigError, load_config
from coconut.build import build_method, build_recipe, build_tokenization, check_recipe

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "coconut", "configs")

# The reference's args/gsm_coconut.yaml layout (values as published).
REFERENCE = """\
# need 4 gpus

project: coconut
save_path: YOUR_PATH_TO_SAVE_THE_MODEL
name: gsm-coconut

only_eval: False

coconut: True
cot: False
no_thoughts: False
no_cot: False

c_thought: 2
epochs_per_stage: 3
max_latent_stage: 3
pad_latent_to_max: True

save_only_improve: False
uniform_prob: 0.0
model_id: openai-community/gpt2
load_model_path: None
seed: 0
resume: 3
bf16: False
train_path: data/gsm_train.json
val_path: data/gsm_valid.json
reset_optimizer: True
batch_size_training: 32
debug: False
gradient_accumulation_steps: 1
num_epochs: 25
lr: !!float "1e-4"
weight_decay: 0.01
"""


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def small(extra=""):
    return "generate: {dataset: prosqa, n: 10, val_n: 2}\ntokenization: prosqa_symbolic\ninit: scratch\n" + extra


def error(tmp_path, text, overrides=()):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), overrides)
    return str(e.value)


def test_reference_yaml_loads_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, REFERENCE))
    assert cfg.coconut is True and cfg.cot is False and cfg.c_thought == 2
    assert cfg.epochs_per_stage == 3 and cfg.max_latent_stage == 3 and cfg.pad_latent_to_max is True
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float) and cfg.num_epochs == 25 and cfg.resume == 3
    assert cfg.load_model_path is None              # the reference writes the string "None"
    assert cfg.model_id == "openai-community/gpt2"  # a hub name stays as it is
    # relative paths are resolved against the working directory
    assert cfg.train_path == os.path.join(str(tmp_path), "data", "gsm_train.json")
    assert cfg.save_dir == os.path.join(str(tmp_path), "YOUR_PATH_TO_SAVE_THE_MODEL", "gsm-coconut")
    method = build_method(cfg)
    assert type(method) is Coconut and method.c_thought == 2 and method.max_latent_stage == 3
    assert method.pad_latent_to_max and method.reset_optimizer == "epoch"


def test_unknown_key_suggests_the_close_one(tmp_path):
    msg = error(tmp_path, small("epoch_per_stage: 3\n"))
    assert "run.yaml" in msg and "line 4" in msg and "'epoch_per_stage'" in msg
    assert "did you mean 'epochs_per_stage'" in msg


def test_wrong_type_names_file_line_and_key(tmp_path):
    msg = error(tmp_path, small("num_epochs: 3.5\n"))
    assert "run.yaml: line 4: key 'num_epochs' must be an integer, got float 3.5" in msg
    msg = error(tmp_path, small("lr: fast\n"))
    assert "key 'lr' must be a number" in msg and "'fast'" in msg
    msg = error(tmp_path, small("coconut: yes please\n"))
    assert "key 'coconut' must be true or false" in msg


def test_pyyaml_string_floats_are_numbers(tmp_path):
    cfg = load_config(write(tmp_path, small("lr: 1e-3\n")))   # PyYAML reads 1e-3 as a string
    assert cfg.lr == 1e-3


@pytest.mark.parametrize("key, value", [("lr", ".nan"), ("lr", ".inf"), ("lr", "-.inf"), ("weight_decay", ".inf"),
                                        ("uniform_prob", ".nan"), ("dropout", ".nan"), ("lr", "nan"),
                                        ("lr", "'inf'")])
def test_non_finite_numbers_are_refused(tmp_path, key, value):
    msg = error(tmp_path, small(f"{key}: {value}\n"))
    assert f"run.yaml: line 4: key '{key}' must be a finite number" in msg


def test_non_finite_numbers_are_refused_in_overrides_and_by_check_type(tmp_path):
    path = write(tmp_path, small())
    with pytest.raises(ConfigError, match="key 'lr' must be a finite number, got nan"):
        load_config(path, ["lr=.nan"])
    from coconut.config_fields import check_type
    with pytest.raises(ConfigError, match="x.yaml: key 'k' must be a finite number, got inf"):
        check_type("k", float("inf"), float, "x.yaml: key 'k'")


def test_num_epochs_zero_is_refused_for_training(tmp_path):
    msg = error(tmp_path, small("num_epochs: 0\n"))
    assert "run.yaml: line 4: key 'num_epochs' must be >= 1 for training, got 0" in msg
    assert "key 'num_epochs' must be >= 0" in error(tmp_path, small("only_eval: true\nnum_epochs: -1\n"))
    assert load_config(write(tmp_path, small("only_eval: true\nnum_epochs: 0\n"))).num_epochs == 0


def test_malformed_yaml_names_file_and_line(tmp_path):
    msg = error(tmp_path, "lr: 0.1\nmethod: [cot\nseed: 1\n")
    assert "run.yaml: line 3" in msg and "malformed YAML" in msg


def test_not_a_mapping_and_duplicates(tmp_path):
    assert "must be a mapping" in error(tmp_path, "- a\n- b\n")
    msg = error(tmp_path, small("seed: 1\nseed: 2\n"))
    assert "line 5: key 'seed' appears twice (first on line 4)" in msg


def test_bf16_is_a_boolean(tmp_path):
    assert load_config(write(tmp_path, small("bf16: true\n"))).bf16 is True
    assert load_config(write(tmp_path, small("bf16: false\n"))).bf16 is False
    assert "key 'bf16'" in error(tmp_path, small("bf16: maybe\n"))


def build_error(tmp_path, text):
    with pytest.raises(ConfigError) as e:
        build_method(load_config(write(tmp_path, text)))
    return str(e.value)


def test_method_name_and_options_are_checked_when_the_method_is_built(tmp_path):
    msg = build_error(tmp_path, small("method: cocunut\n"))
    assert "unknown method 'cocunut'" in msg and "did you mean 'coconut'" in msg
    msg = build_error(tmp_path, small("method: pause_token\nmethod_options: {n_paus: 3}\n"))
    assert "'n_paus' is not an option of method pause_token" in msg and "did you mean 'n_pause'" in msg
    cfg = load_config(write(tmp_path, small("method: pause_token\nmethod_options: {n_pause: 3}\n")))
    method = build_method(cfg)
    assert type(method) is PauseToken and method.n_pause == 3


def test_bad_method_option_value_names_the_file(tmp_path):
    cfg = load_config(write(tmp_path, small("method: icot\nmethod_options: {tokens_removed_per_epoch: -1}\n")))
    with pytest.raises(ConfigError, match=r"run.yaml: method: tokens_removed_per_epoch must be"):
        build_method(cfg)


def test_reset_optimizer_rules(tmp_path):
    # checked by the method, the one place that knows the rules
    with pytest.raises(ConfigError, match=r"run.yaml: method: reset_optimizer must be .* got 'stag'"):
        build_method(load_config(write(tmp_path, small("reset_optimizer: stag\n"))))
    for value, rule in (("true", "epoch"), ("false", "never"), ("stage", "stage"), ("never", "never")):
        cfg = load_config(write(tmp_path, small(f"coconut: true\nreset_optimizer: {value}\n")))
        assert build_method(cfg).reset_optimizer == rule
    # not given: the method's own default (CoT never resets)
    assert build_method(load_config(write(tmp_path, small("method: cot\n")))).reset_optimizer == "never"


def test_values_and_data_sources_are_checked(tmp_path):
    assert "key 'batch_size_training' must be >= 1" in error(tmp_path, small("batch_size_training: 0\n"))
    assert "not divisible by n_head" in error(tmp_path, small("n_embd: 30\nn_head: 4\n"))
    assert "unknown key 'm'" in error(tmp_path, "generate: {dataset: prosqa, m: 3}\ninit: scratch\n")
    assert "must be one of ['prosqa', 'prontoqa']" in error(tmp_path, "generate: {dataset: gsm}\n")
    assert "not both" in error(tmp_path, small("train_path: a.json\n"))
    from coconut.build import load_data
    with pytest.raises(ConfigError, match="no training data"):   # refused when a training run reads its data
        load_data(load_config(write(tmp_path, "init: scratch\ntokenization: prosqa_symbolic\nval_path: v.json\n")))
    msg = error(tmp_path, "generate: {n: 3}\ntokenization: prosqa_symbolic\n")   # init defaults to pretrained
    assert "key 'init'" in msg and "tokenization: gpt2" in msg
    assert "key 'recipe' must be a mapping" in error(tmp_path, small("recipe: [1]\n"))
    from coconut.build import build_tokenization
    with pytest.raises(ConfigError, match="tokenization: unknown 'prosqa_symbolc' \\(did you mean 'prosqa_symbolic'"):
        build_tokenization(load_config(write(tmp_path, small()), ["tokenization=prosqa_symbolc"]), None, [])


def test_overrides(tmp_path):
    path = write(tmp_path, small())
    cfg = load_config(path, ["lr=3e-4", "generate.n=7", "method=cot", "load_model_path=None"])
    assert cfg.lr == 3e-4 and cfg.generate.n == 7 and cfg.generate.val_n == 2 and cfg.method == "cot"
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["lr"])
    with pytest.raises(ConfigError, match="unknown key.*did you mean 'num_epochs'"):
        load_config(path, ["num_epoch=3"])
    with pytest.raises(ConfigError, match="key 'seed' must be an integer"):
        load_config(path, ["seed=abc"])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(str(tmp_path / "nope.yaml"))


def test_generated_training_data_with_an_official_validation_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    cfg = load_config(write(tmp_path, small("val_path: ${DATA_DIR}/v.json\n")), ["generate.val_n=0"])
    assert cfg.val_path == str(tmp_path / "data" / "v.json") and cfg.generate.val_n == 0
    assert "set generate.val_n >= 1 or val_path" in error(tmp_path, small(), ["generate.val_n=0"])
    monkeypatch.delenv("DATA_DIR")
    msg = error(tmp_path, small("val_path: $DATA_DIR/v.json\n"))
    assert "key 'val_path'" in msg and "DATA_DIR, which is not set" in msg


def test_official_data_names_the_packaged_file_or_the_copy_under_coconut_data(tmp_path, monkeypatch):
    text = "train_path: official:prontoqa/train\nval_path: official:prosqa/valid\n"
    monkeypatch.delenv("COCONUT_DATA", raising=False)
    cfg = load_config(write(tmp_path, text))
    assert (cfg.train_path, cfg.val_path) == (official_path("prontoqa", "train"), official_path("prosqa", "valid"))
    monkeypatch.setenv("COCONUT_DATA", str(tmp_path / "data"))
    cfg = load_config(write(tmp_path, text))
    assert cfg.train_path == str(tmp_path / "data" / "prontoqa" / "prontoqa_train.json")
    assert cfg.val_path == str(tmp_path / "data" / "prosqa" / "prosqa_valid.json")
    for name, shipped in (("prosqa/test", "prosqa/valid"), ("prosqa", "gsm8k/valid"), ("gsm/valid", "prontoqa/train")):
        msg = error(tmp_path, small(f"val_path: official:{name}\n"))
        assert msg.startswith(f"{tmp_path / 'run.yaml'}: line 4: key 'val_path': unknown official data "
                              f"'official:{name}'") and f"official:{shipped}" in msg


def test_presets_are_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COCONUT_DATA", str(tmp_path))
    for name in ("prosqa-cpu", "prosqa-cpu-long", "prosqa-cpu-fresh", "prontoqa-cpu"):
        cfg = load_config(name, ["method=cot"] + (["recipe.predict_past_eot=false"] if name == "prontoqa-cpu" else []))
        assert cfg.source == os.path.join(os.path.abspath(CONFIGS), name + ".yaml")
        assert type(build_method(cfg)) is CoT and cfg.val_path.startswith(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    write(tmp_path, small(), name="prosqa-cpu")   # a file of that name in the working directory wins
    assert load_config("prosqa-cpu").generate.n == 10
    cot = load_config("prontoqa-cpu", ["method=cot"])
    with pytest.raises(ConfigError, match="predict_past_eot.*no thought slots"):
        tok = build_tokenization(cot, build_method(cot), official("prontoqa", "valid"))
        check_recipe(cot, build_recipe(cot), build_method(cot), tok)   # the preset's thought label needs thoughts
    with pytest.raises(ConfigError, match="no-such-preset: cannot read"):
        load_config("no-such-preset")


SHIPPED = {
    "default.yaml": Coconut, "gsm_cot.yaml": CoT, "gsm_coconut.yaml": Coconut,
    "prontoqa_coconut.yaml": Coconut, "prosqa_coconut.yaml": Coconut, "prosqa_cot.yaml": CoT,
    "prosqa_no_cot.yaml": NoCoT, "prosqa_icot.yaml": ICoT, "prosqa_pause_token.yaml": PauseToken,
    "prosqa_no_curriculum.yaml": NoCurriculum, "prosqa_no_thought.yaml": NoThought,
    "prosqa_pause_as_thought.yaml": PauseAsThought, "prosqa-cpu.yaml": Coconut, "prosqa-cpu-long.yaml": Coconut,
    "prosqa-cpu-fresh.yaml": Coconut, "prosqa-cpu-thoughts.yaml": Coconut, "prosqa-cpu-fixed.yaml": Coconut,
    "prontoqa-cpu.yaml": Coconut, "prontoqa-cpu-38-epochs.yaml": Coconut,
}


def test_every_shipped_config_is_listed():
    assert sorted(n for n in os.listdir(CONFIGS) if n.endswith(".yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_load_and_pick_their_method(name, monkeypatch):
    monkeypatch.setenv("COCONUT_DATA", "data")
    cfg = load_config(os.path.join(CONFIGS, name))
    method = build_method(cfg)
    assert type(method) is SHIPPED[name]
    if name.startswith("prosqa_") and name != "prosqa_coconut.yaml":
        # the baselines keep the paper's training budget
        assert cfg.num_epochs == 50 and cfg.lr == 1e-4 and cfg.batch_size_training == 32
    if isinstance(method, Coconut):
        c = 2 if name.startswith("gsm") else 1
        assert name in ("default.yaml", "prosqa-cpu.yaml", "prosqa-cpu-long.yaml", "prosqa-cpu-fresh.yaml",
                        "prosqa-cpu-thoughts.yaml", "prosqa-cpu-fixed.yaml", "prontoqa-cpu.yaml",
                        "prontoqa-cpu-38-epochs.yaml") or (method.c_thought, method.reset_optimizer) == (c, "epoch")
