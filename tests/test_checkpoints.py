"""Hugging Face checkpoints: save_pretrained -> transformers -> from_pretrained round
trips bitwise, vocabulary growth, and refusals of mismatched checkpoints."""
import json
import os

import numpy as np
import pytest
import torch
import transformers

import coconut
from coconut.safetensors_io import load_safetensors, save_safetensors
from hf_bridge import padded_batch, small_model


def test_round_trip_through_transformers_is_bitwise(tmp_path):
    model = small_model(seed=4)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    model.save_pretrained(str(ours_dir))
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(ours_dir))
    for name, view in model.params.items():
        assert np.array_equal(hf.state_dict()[name].numpy(), view), name
    # transformers computes what we compute from the loaded weights
    ids, mask, pos, _ = padded_batch()
    with torch.no_grad():
        ref = hf.eval()(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        position_ids=torch.from_numpy(pos)).logits.numpy()
    real = mask.astype(bool)
    assert np.abs(model.forward(ids, mask, pos)[real] - ref[real]).max() <= 1e-4
    hf.save_pretrained(str(theirs_dir))
    back = coconut.GPT2.from_pretrained(str(theirs_dir))
    assert back.config == model.config
    assert np.array_equal(back.param_block, model.param_block)


def test_reads_the_original_gpt2_key_names(tmp_path):
    """The released GPT-2 checkpoint names tensors without `transformer.` and carries
    the causal-mask buffers `h.N.attn.bias`."""
    model = small_model(seed=2)
    tensors = {k[len("transformer."):]: v for k, v in model.params.items()}
    for i in range(model.config.n_layer):
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
    os.makedirs(tmp_path / "orig")
    save_safetensors(str(tmp_path / "orig" / "model.safetensors"), tensors)
    model.config.save_hf_file(str(tmp_path / "orig" / "config.json"))
    back = coconut.GPT2.from_pretrained(str(tmp_path / "orig"))
    assert np.array_equal(back.param_block, model.param_block)


def test_vocabulary_growth_copies_a_row(tmp_path):
    model = small_model(seed=1)
    before = model.params["transformer.wte.weight"].copy()
    others = {k: v.copy() for k, v in model.params.items() if k != "transformer.wte.weight"}
    model.add_thought_tokens(bot_id=97, eot_id=98, latent_id=99, copy_from=16)
    wte = model.params["transformer.wte.weight"]
    assert wte.shape == (100, 48) and model.config.vocab_size == 100
    assert np.array_equal(wte[:97], before)
    for row in (97, 98, 99):
        assert np.array_equal(wte[row], before[16])
    for k, v in others.items():
        assert np.array_equal(model.params[k], v)
    assert model.thoughts == coconut.ThoughtSpec("continuous", latent_id=99, bot_id=97, eot_id=98)
    # the grown model still trains: gradients land in the new rows
    ids = np.array([[1, 2, 97, 99, 99, 98, 5, 6]])
    model.zero_grad()
    model.loss_and_grad(ids, ids)
    assert np.abs(model.grads["transformer.wte.weight"][97]).max() > 0


def test_mismatched_checkpoints_are_refused(tmp_path):
    model = small_model()
    model.save_pretrained(str(tmp_path / "m"))
    # a tensor of the wrong shape
    tensors, _ = load_safetensors(str(tmp_path / "m" / "model.safetensors"))
    tensors["transformer.h.0.ln_1.weight"] = np.ones(7, np.float32)
    save_safetensors(str(tmp_path / "m" / "model.safetensors"), tensors)
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.ln_1\.weight.*shape"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    # a missing tensor
    del tensors["transformer.h.0.ln_1.weight"]
    save_safetensors(str(tmp_path / "m" / "model.safetensors"), tensors)
    with pytest.raises(ValueError, match="missing tensor"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    # a config the core does not compute
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["activation_function"] = "relu"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="activation_function"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    (tmp_path / "m" / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="config.json: line 1"):
        coconut.GPT2.from_pretrained(str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError):
        coconut.GPT2.from_pretrained(str(tmp_path / "nowhere"))
