"""The out-of-distribution ProsQA splits (coconut.data.ood): shipped whole, drawn from the
generator as stated, each outside the official questions' ranges in the way its name
says; and `coconut eval --ood` scores a model on all of them."""
import collections
import hashlib
import os

import pytest

from coconut.cli import main
from coconut.data import official
from coconut.data.ood import OOD_DIR, SIZE, draw, ood_names, ood_path, ood_split


def test_the_files_match_their_sha256sums():
    with open(os.path.join(OOD_DIR, "SHA256SUMS")) as f:
        sums = dict(reversed(line.split()) for line in f)
    for name in ood_names():
        path = ood_path(name)
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sums[os.path.basename(path)]


@pytest.mark.parametrize("name", ood_names())
def test_a_split_is_what_its_seed_and_settings_draw(name):
    examples = ood_split(name)
    assert len(examples) == SIZE
    assert draw(name, 2) == examples[:2] and draw(name, 1, start=SIZE - 1) == examples[-1:]


def test_each_split_leaves_the_official_ranges_as_named():
    valid = official("prosqa", "valid")
    assert {len(e.steps) for e in valid} == {3, 4, 5, 6}
    assert max(len(e.idx_to_symbol) for e in valid) == 28 and max(len(e.edges) for e in valid) == 53
    assert {len(e.steps) for e in ood_split("steps7")} == {7}
    assert {len(e.steps) for e in ood_split("steps8")} == {8}
    assert min(len(e.edges) for e in ood_split("dense")) >= 60
    for e in ood_split("forest"):
        parents = collections.Counter(child for _, child in e.edges)
        assert max(parents.values()) == 1 and 3 <= len(e.steps) <= 6
    for name in ood_names():   # within the nodes the generator's training graphs have
        assert max(len(e.idx_to_symbol) for e in ood_split(name)) <= 28
    seen = {e.question for e in valid}
    assert not any(e.question in seen for name in ood_names() for e in ood_split(name))


def test_eval_ood_prints_a_row_per_split(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("generate: {dataset: prosqa, n: 8, val_n: 4, seed: 0}\ntokenization: prosqa_edge_tokens\n"
                   "init: scratch\nn_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: 256\nmethod: coconut\n"
                   "max_latent_stage: 2\npad_latent_to_max: true\nmax_new_tokens: 4\nthreads: 1\n"
                   f"save_path: {tmp_path}\n")
    assert main(["eval", str(cfg), "--ood", "--untrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["split", "n", "own", "prompt", "thoughts", "k", "=", "4"]
    assert [line.split()[0] for line in lines[1:6]] == ["validation", *ood_names()]
    assert [line.split()[1] for line in lines[1:6]] == ["4", *[str(SIZE)] * 4]
    assert all(line.split()[3] == "2.00" for line in lines[1:6])   # the trained prompt: 2 thoughts
