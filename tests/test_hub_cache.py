"""`init: pretrained` finds GPT-2 in the local Hugging Face cache ($HF_HUB_CACHE), laid out
as the hub client leaves it: refs/main -> snapshots/<hash>/ whose files link into blobs/."""
import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
import transformers

from coconut import hub_cache
from coconut.run_config import ConfigError, config_from_dict
from coconut.build import build_method, build_model, build_tokenization, load_data

COMMIT = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


def tiny_gpt2() -> transformers.GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50257)
    return transformers.GPT2LMHeadModel(cfg).eval()


def put_in_cache(hf, cache, folder: str) -> str:
    """Save hf as the hub stores GPT-2 (keys without `transformer.`), then move each
    file into blobs/ under its hash and link it from the snapshot."""
    saved = cache / "download"
    hf.transformer.save_pretrained(saved, safe_serialization=True)
    repo = cache / folder
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in os.listdir(saved):
        data = (saved / name).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    shutil.rmtree(saved)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return str(snapshot)


def pretrained_config(model_id: str):
    return config_from_dict({"generate": {"dataset": "prosqa", "n": 2, "val_n": 1}, "init": "pretrained",
                             "model_id": model_id, "tokenization": "gpt2", "coconut": True, "debug": True})


@pytest.mark.parametrize("model_id, folder", [("openai-community/gpt2", "models--openai-community--gpt2"),
                                              ("gpt2", "models--openai-community--gpt2"),
                                              ("gpt2", "models--gpt2"),
                                              ("someone/gpt2-tuned", "models--someone--gpt2-tuned")])
def test_gpt2_is_read_from_the_hub_cache(tmp_path, monkeypatch, model_id, folder):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)      # the bare name must not be taken for a directory
    hf = tiny_gpt2()
    snapshot = put_in_cache(hf, tmp_path / "hub", folder)
    assert os.path.islink(os.path.join(snapshot, "model.safetensors"))
    assert hub_cache.snapshot_dir(model_id) == snapshot

    cfg = pretrained_config(model_id)
    assert cfg.model_id == model_id                  # kept as a hub name, not made a path
    method = build_method(cfg)
    _, val, _ = load_data(cfg)
    model = build_model(cfg, build_tokenization(cfg, method, val))
    ids = np.random.default_rng(1).integers(0, 50257, size=(2, 9))
    ours = model.forward(ids)
    with torch.no_grad():
        theirs = hf(torch.from_numpy(ids)).logits.numpy()
    # the model grew by the thought tokens; GPT-2's own 50257 columns are unchanged
    assert ours.shape == (2, 9, 50260)
    np.testing.assert_allclose(ours[..., :50257], theirs, rtol=0, atol=2e-5)


def test_hf_home_and_the_default_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache.cache_dir() == str(tmp_path / "hf" / "hub")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_cache.cache_dir() == str(tmp_path / ".cache" / "huggingface" / "hub")


def test_not_found_says_where_it_looked(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    # a snapshot without its weights (e.g. only the config was fetched) does not count
    snapshot = cache / "models--gpt2" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(tiny_gpt2().config.to_json_string())
    (cache / "models--gpt2" / "refs").mkdir()
    (cache / "models--gpt2" / "refs" / "main").write_text(COMMIT)
    assert hub_cache.snapshot_dir("gpt2") is None
    cfg = pretrained_config("gpt2")
    with pytest.raises(ConfigError) as e:
        build_model(cfg, build_tokenization(cfg, build_method(cfg), []))
    message = str(e.value)
    assert "model_id: 'gpt2' is not a local Hugging Face model directory" in message
    assert f"nor in the Hugging Face cache ({cache}/models--gpt2 or {cache}/models--openai-community--gpt2)" \
        in message
    assert "huggingface-cli download openai-community/gpt2" in message
