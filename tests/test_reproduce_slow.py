"""Regression run of the prosqa-cpu preset's Coconut row: trains it from scratch in
reproducible mode on one thread and checks every epoch's validation accuracy against
the recorded run EXACTLY. About 15 minutes; not run by default or in CI:

    python -m pytest -m slow tests/test_reproduce_slow.py

Why exact: with COCONUT_REPRODUCIBLE=1 OpenBLAS runs its Haswell kernels on any CPU
with AVX2 and FMA, and on one thread the run is then the same sequence of rounded
operations everywhere (coconut.reproducible). The recorded run
(benchmarks/results/reproduce.json) was made on an AVX2 machine, whose own kernels are
Haswell's; on an AVX-512 machine in this mode every epoch's losses, accuracy and
answer lengths came out equal to the last digit. The extension needs no special
build: builds for -march=native (AVX-512) and -march=x86-64-v3 trained to byte-equal
weights and optimizer states (through three curriculum stages, thoughts included).

Needs: an x86-64 CPU with AVX2 and FMA (the mode refuses others; the test is skipped).
The preset reads the official ProsQA validation split shipped with the package.

Without the mode the figures depend on the CPU. The same run on one AVX-512 machine,
one thread, the same build, with each OpenBLAS kernel set (correct answers of 300
after each epoch; benchmarks/results/reproduce_kernel_sets.json):

    epoch        1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16   final
    Haswell     85 154 172 148 139 151 175 180 184 188 183 208 193 213 205 199   66.3%
    SkylakeX    83 152 157 164 160 156 175 184 178 177 184 187 185 194 190 186   62.0%
    Sandybridge 92 159 167 160 135 137 162 175 182 189 194 198 186 201 210 199   66.3%

Haswell's row is the recorded run; SkylakeX's kernels are the ones OpenBLAS picks on
AVX-512 machines, where the old 2-point tolerance failed (62.0% on two of them). The
kernel sets part at the first epoch and then differ by 6 to 25 answers per epoch (up
to 8 points); the final accuracy spans 62.0-66.3% (Sandybridge meets Haswell there by
chance) and the best 64.7-71.0%. That is as much as separates several methods in the
README's table, so the check pins the kernel set instead of widening a tolerance.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coconut
from coconut import reproducible

# `coconut train prosqa-cpu` (Coconut, seed 0) on one thread with OpenBLAS's Haswell
# kernels: correct answers of the 300 validation questions after each of the 16 epochs,
# and each epoch's mean training loss, as recorded in benchmarks/results/reproduce.json.
RECORDED_CORRECT = [85, 154, 172, 148, 139, 151, 175, 180, 184, 188, 183, 208, 193, 213, 205, 199]
RECORDED_TRAIN_LOSS = [1.2568607600938546, 0.6490890059075993, 0.7299336344940475, 0.6067473059983565,
                       0.6206187868477495, 0.5503021596735992, 0.6383206582271652, 0.5749178841438864,
                       0.4537931028707694, 0.4165500160666554, 0.2811626385232224, 0.2605720590822731,
                       0.20633536175494638, 0.1920225926665844, 0.17814079428453225, 0.16289244065498576]
N_VALID = 300


@pytest.mark.slow
@pytest.mark.skipif(bool(reproducible.unsupported_cpu()), reason="reproducible mode needs AVX2 and FMA")
def test_prosqa_cpu_coconut_repeats_its_recorded_run(tmp_path):
    # a fresh interpreter: the mode must be set before OpenBLAS loads; the packaged data
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "COCONUT_DATA")}
    env.update(COCONUT_REPRODUCIBLE="1",
               PYTHONPATH=os.pathsep.join([str(Path(coconut.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "coconut", "train", "prosqa-cpu", "--set", "threads=1",
           "--set", f"save_path={tmp_path}", "--set", "name=run"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        epochs = [json.loads(line) for line in f]
    assert [e["epoch"] for e in epochs] == list(range(1, 17))
    assert [round(e["val_accuracy"] * N_VALID) for e in epochs] == RECORDED_CORRECT
    # the same run to the last bit; the tolerance only spares a change in how Python
    # averages the per-step losses
    assert [e["train_loss"] for e in epochs] == pytest.approx(RECORDED_TRAIN_LOSS, rel=1e-12)
