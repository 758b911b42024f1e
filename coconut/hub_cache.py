"""Models in the local Hugging Face hub cache, found offline by reading its layout.

A model that `huggingface-cli download` or `transformers` fetched lies in

    <cache>/models--{org}--{name}/refs/main              the commit hash of the snapshot
    <cache>/models--{org}--{name}/snapshots/<hash>/      config.json, model.safetensors, ...
                                                         (often symlinks into ../../blobs/)

where <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
Nothing is downloaded and `huggingface_hub` is not needed.

    snapshot_dir("openai-community/gpt2")   # the snapshot's directory, or None
"""
from __future__ import annotations

import os
import re

# GPT-2 went by "gpt2" before the hub moved it to "openai-community/gpt2"; a cache may hold either.
GPT2_HUB_NAMES = ("gpt2", "openai-community/gpt2")
MODEL_FILES = ("config.json", "model.safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def is_repo_id(name: str) -> bool:
    """"name" or "org/name", as the hub spells repositories."""
    return bool(_REPO_ID.match(name))


def repo_folders(model_id: str) -> list[str]:
    """The cache folders that may hold `model_id`: its own, then GPT-2's other name."""
    names = [model_id] + [name for name in GPT2_HUB_NAMES if model_id in GPT2_HUB_NAMES and name != model_id]
    return [os.path.join(cache_dir(), "models--" + name.replace("/", "--")) for name in names]


def snapshot_dir(model_id: str) -> str | None:
    """The snapshot that refs/main names, when it holds config.json and model.safetensors."""
    if not is_repo_id(model_id):
        return None
    for folder in repo_folders(model_id):
        try:
            with open(os.path.join(folder, "refs", "main"), encoding="utf-8") as f:
                commit = f.read().strip()
        except OSError:
            continue
        snapshot = os.path.join(folder, "snapshots", commit)
        if commit and all(os.path.isfile(os.path.join(snapshot, name)) for name in MODEL_FILES):
            return snapshot
    return None
