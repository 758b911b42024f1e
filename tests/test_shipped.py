"""The trained models that ship with the package (coconut.shipped): whole (their
SHA256SUMS), loadable by name from Python and the command line, and still scoring what
record.json says with the current core: exactly in reproducible mode (a fresh
interpreter, OpenBLAS's Haswell kernels, one thread), where the CPU allows it."""
import json
import os
import subprocess
import sys

import pytest

import coconut
from coconut import reproducible, shipped
from coconut.checkpoints import verify_checkpoint
from coconut.cli import main

NAMES = shipped.names()


def test_the_headline_rows_ship():
    assert NAMES == ["prontoqa-coconut", "prosqa-coconut", "prosqa-cot"]


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_is_whole_and_loads_by_name(name):
    assert verify_checkpoint(shipped.model_dir(name)) is True   # every file against SHA256SUMS
    record = shipped.record(name)
    run = coconut.pretrained(name)
    assert run.checkpoint == shipped.model_dir(name) and run.method.name == record["method"]
    assert len(run.val_set) == record["n"]
    assert os.path.getsize(os.path.join(shipped.model_dir(name), "model.safetensors")) < 4_000_000


@pytest.mark.skipif(bool(reproducible.unsupported_cpu()), reason="reproducible mode needs AVX2 and FMA")
@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_scores_its_record_exactly_in_reproducible_mode(name):
    code = ("import json, coconut\n"
            f"ev = coconut.pretrained({name!r}, ['threads=1']).evaluate()\n"
            "print(json.dumps([sum(r.correct for r in ev.records), len(ev.records)]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "COCONUT_DATA")}
    env["COCONUT_REPRODUCIBLE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    record = shipped.record(name)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [record["correct"], record["n"]]


def test_eval_takes_a_shipped_model_by_name(capsys):
    name = "prosqa-coconut"
    assert main(["eval", name, "--set", "val_size=20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy ") and "on 20 examples" in out and shipped.model_dir(name) in out


def test_an_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="no shipped model named 'prosqa-coconutt'; shipped: prontoqa-coconut"):
        coconut.pretrained("prosqa-coconutt")
