"""Trained models that ship with the package: the final checkpoints of the results
table's headline rows (seed 0), so that an analysis starts from a model that reasons
instead of from a training run.

    run = coconut.pretrained("prosqa-coconut")      # a coconut.assembly.Run, for evaluation
    run.evaluate().accuracy                          # on the official validation split
    coconut eval prosqa-coconut --k-sweep            # by name on the command line

Each is a folder in coconut/models/: the weights as a Hugging Face checkpoint
(config.json, model.safetensors), the trainer state that names its tokenization, the
run's config (run.yaml), its metrics (metrics.jsonl), record.json (how it was trained
and what it scores) and SHA256SUMS over all of them, checked when it is loaded.
record.json's `correct` is the count of validation questions answered right in
reproducible mode (COCONUT_REPRODUCIBLE=1, one thread): the same on every CPU with AVX2
and FMA (tests/test_shipped.py checks it).
"""
from __future__ import annotations

import json
import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def names() -> list[str]:
    """The shipped models."""
    if not os.path.isdir(MODELS_DIR):
        return []
    return sorted(d for d in os.listdir(MODELS_DIR) if os.path.isfile(os.path.join(MODELS_DIR, d, "run.yaml")))


def model_dir(name: str) -> str:
    if name not in names():
        raise ValueError(f"no shipped model named {name!r}; shipped: {', '.join(names()) or 'none'}")
    return os.path.join(MODELS_DIR, name)


def config(name: str, overrides=()):
    """The shipped model's run config (a RunConfig), with `--set`-style overrides."""
    from coconut.run_config import load_config
    return load_config(os.path.join(model_dir(name), "run.yaml"), overrides)


def record(name: str) -> dict:
    """How the model was trained and what it scores (record.json)."""
    with open(os.path.join(model_dir(name), "record.json"), encoding="utf-8") as f:
        return json.load(f)


def pretrained(name: str, overrides=(), **assemble_options):
    """The shipped model `name` assembled for evaluation (coconut.assembly.Run: model,
    tokenization, method, the validation split)."""
    from coconut.assembly import assemble
    return assemble(config(name, overrides), "eval", checkpoint=model_dir(name), **assemble_options)
