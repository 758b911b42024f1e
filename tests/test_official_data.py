"""The official splits shipped in coconut/data/official: their bytes, sizes and fields."""
import gzip
import hashlib
import os

import pytest

from coconut.data import official, official_names, official_path
from coconut.data.official_splits import OFFICIAL_DIR

COUNTS = {("prosqa", "valid"): 300, ("prontoqa", "train"): 9000, ("prontoqa", "valid"): 200,
          ("gsm8k", "valid"): 500}


def sha256sums() -> dict:
    with open(os.path.join(OFFICIAL_DIR, "SHA256SUMS"), encoding="utf-8") as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}


def test_the_shipped_files_are_the_listed_ones():
    assert sorted(official_names()) == sorted(f"{d}/{s}" for d, s in COUNTS)
    shipped = sorted(n for n in os.listdir(OFFICIAL_DIR) if n.endswith(".json.gz"))
    assert shipped == sorted(os.path.basename(official_path(d, s)) for d, s in COUNTS)
    assert sorted(sha256sums()) == sorted(n[:-len(".gz")] for n in shipped)


@pytest.mark.parametrize("dataset, split", sorted(COUNTS))
def test_decompressed_bytes_match_sha256sums(dataset, split):
    path = official_path(dataset, split)
    with open(path, "rb") as f:
        packed = f.read()
    # reproducible gzip: no modification time, no file name (FLG bit 3) in the header
    assert packed[:3] == b"\x1f\x8b\x08" and packed[3] & 0x08 == 0 and packed[4:8] == bytes(4)
    digest = hashlib.sha256(gzip.decompress(packed)).hexdigest()
    assert digest == sha256sums()[os.path.basename(path)[:-len(".gz")]]


@pytest.mark.parametrize("dataset, split", sorted(COUNTS))
def test_loader_returns_every_example_with_its_fields(dataset, split):
    examples = official(dataset, split)
    assert len(examples) == COUNTS[dataset, split]
    assert all(ex.question and ex.steps and ex.answer for ex in examples)
    assert all(ex.has_graph == (dataset == "prosqa") for ex in examples)
    if dataset == "prontoqa":
        assert {ex.answer for ex in examples} == {"True", "False"}
        assert {len(ex.steps) for ex in examples} == {6}


def test_unknown_names_list_what_is_shipped():
    with pytest.raises(ValueError, match=r"no official dataset 'gsm'; shipped: prosqa/valid, .*gsm8k/valid"):
        official_path("gsm", "valid")
    with pytest.raises(ValueError, match=r"no official prosqa split 'test'; shipped: valid \(test splits"):
        official("prosqa", "test")
