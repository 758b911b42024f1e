"""The official splits shipped with the package (coconut/data/official/*.json.gz).

    examples = official("prosqa", "valid")      # 300 ProsQA validation examples
    path = official_path("prontoqa", "train")   # the packaged file, for load_examples

A config names them as `official:DATASET/SPLIT` (see coconut.run_config). Sources and
licences: coconut/data/official/README.md.
"""
from __future__ import annotations

import os

from coconut.data.example import Example
from coconut.data.loaders import load_examples

# (dataset, split) -> the file's path in the official layout (the reference's names,
# under one folder per dataset); the packaged copy is its file name + ".gz".
OFFICIAL_FILES = {
    ("prosqa", "valid"): "prosqa/prosqa_valid.json",
    ("prontoqa", "train"): "prontoqa/prontoqa_train.json",
    ("prontoqa", "valid"): "prontoqa/prontoqa_valid.json",
    ("gsm8k", "valid"): "gsm8k/gsm_valid.json",
}
OFFICIAL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official")


def official_names() -> list[str]:
    """The shipped splits as "dataset/split"."""
    return [f"{dataset}/{split}" for dataset, split in OFFICIAL_FILES]


def official_layout_path(dataset: str, split: str) -> str:
    """The split's path relative to a folder in the official layout ("prosqa/prosqa_valid.json")."""
    if (dataset, split) not in OFFICIAL_FILES:
        if dataset not in {d for d, _ in OFFICIAL_FILES}:
            raise ValueError(f"no official dataset {dataset!r}; shipped: {', '.join(official_names())}")
        splits = [s for d, s in OFFICIAL_FILES if d == dataset]
        raise ValueError(f"no official {dataset} split {split!r}; shipped: {', '.join(splits)} "
                         "(test splits are not shipped)")
    return OFFICIAL_FILES[dataset, split]


def official_path(dataset: str, split: str) -> str:
    """The packaged file of an official split (gzipped JSON; load_examples reads it)."""
    return os.path.join(OFFICIAL_DIR, os.path.basename(official_layout_path(dataset, split)) + ".gz")


def official(dataset: str, split: str) -> list[Example]:
    """The examples of an official split, e.g. official("prosqa", "valid")."""
    return load_examples(official_path(dataset, split))
