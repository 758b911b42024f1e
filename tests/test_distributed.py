"""Data-parallel training over MPI (coconut.distributed).

Without MPI: the sharding rules, the accumulation check, the world found without a
launcher, the error when a launcher runs us without mpi4py, and one optimizer step
shared by two simulated ranks summing to the one-process gradient.

With `mpirun` and mpi4py (skipped otherwise; this file installs nothing): a tiny
Coconut run (dropout on, 2 micro-batches per step, AdamW moments kept across epochs)
with 2 processes against 1, a resume that changes the number of processes, and the
refusal of an accumulation that does not divide over the ranks.

Tolerances. N processes differ from one only in summation order (the all-reduce adds
two partial gradients where one process accumulates into the block), about 1e-7
relative in the gradient; the first step's summed gradients are compared at 1e-5 of
max |g|. AdamW divides by sqrt(v) + eps, which lifts rounding noise in gradients that
nearly cancel to ~lr * noise / eps per step, so the final weights after 8 steps at
lr 1e-3 are compared at 1e-5 of max |param| (measured: ~2e-6); one epoch moves them by
~4e-3, so a micro-batch sharded to the wrong rank, scale or dropout seed is far outside.
"""
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

import coconut
from coconut import distributed
from coconut.run_config import ConfigError, config_from_dict
from coconut.train import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(coconut.__file__)))
MPIRUN = shutil.which("mpirun")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not (MPIRUN and HAVE_MPI4PY),
                               reason="needs mpirun and mpi4py (apt-get install libopenmpi-dev openmpi-bin; "
                                      "pip install mpi4py)")

CONFIG = dict(generate={"dataset": "prosqa", "n": 32, "val_n": 6, "seed": 0}, tokenization="prosqa_symbolic",
              init="scratch", n_layer=2, n_head=2, n_embd=32, n_positions=256, dropout=0.1, coconut=True,
              c_thought=1, epochs_per_stage=1, max_latent_stage=2, pad_latent_to_max=True, num_epochs=2,
              batch_size_training=4, gradient_accumulation_steps=2, reset_optimizer="never", lr=1e-3,
              max_new_tokens=6, eval_batch_size=4)
STEPS_PER_EPOCH = 4   # 32 examples / (4 x 2)
REL_PARAMS = 1e-5
REL_GRADS = 1e-5


# ----------------------------------------------------------------------- without MPI


def test_shards_partition_every_step_and_keep_the_order():
    assert list(distributed.shard(5, 0, 2)) == [0, 2, 4] and list(distributed.shard(5, 1, 2)) == [1, 3]
    for n in range(0, 9):
        for size in (1, 2, 3, 4):
            parts = [list(distributed.shard(n, r, size)) for r in range(size)]
            assert sorted(sum(parts, [])) == list(range(n))
            assert all(p == sorted(p) for p in parts)


def test_accumulation_must_divide_over_the_ranks():
    distributed.check_accumulation(4, 2)
    distributed.check_accumulation(3, 1)
    distributed.check_accumulation(6, 3)
    with pytest.raises(ConfigError, match=r"run.yaml: key 'gradient_accumulation_steps': 3 is not a multiple "
                                          r"of the 2 MPI processes.*rank j mod 2"):
        distributed.check_accumulation(3, 2, "run.yaml")


def test_no_launcher_means_one_process_and_no_mpi4py_import():
    env = {k: v for k, v in os.environ.items()
           if k not in distributed.LAUNCHER_SIZE_VARS + distributed.LAUNCHER_RANK_VARS + ("COCONUT_MPI",)}
    env["PYTHONPATH"] = ROOT
    code = ("import sys; from coconut import distributed as d; import coconut.train, coconut.cli; w = d.world(); "
            "print(type(w).__name__, w.rank, w.size, 'mpi4py' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["SingleProcess", "0", "1", "False"]


def test_a_launch_without_mpi4py_fails_with_the_install_line(monkeypatch, tmp_path, capsys):
    from coconut.cli import main
    monkeypatch.setattr(distributed, "_WORLD", None)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)   # import mpi4py now raises ImportError
    with pytest.raises(distributed.DistributedError, match="mpi4py cannot be imported.*pip install mpi4py"):
        distributed.world()
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps({**CONFIG, "save_path": str(tmp_path)}))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coconut: error: started by an MPI launcher") and "apt-get install" in err
    assert not os.path.exists(tmp_path / "run")
    monkeypatch.setenv("COCONUT_MPI", "0")          # told to ignore the launcher
    assert isinstance(distributed.world(), distributed.SingleProcess)


def test_dropout_calls_advance_only_with_dropout_in_training():
    model = coconut.GPT2(coconut.GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=11, n_positions=8,
                                            dropout=0.1))
    ids, labels = np.array([[1, 2, 3, 4]]), np.array([[1, 2, 3, 4]])

    def advance():   # what one training loss call really moves the counter by
        before = model.dropout_calls
        model.loss_and_grad(ids, labels)
        return model.dropout_calls - before

    assert model.train().dropout_calls_per_pass == advance() == 1
    assert model.eval().dropout_calls_per_pass == advance() == 0
    model.config.dropout = 0.0
    assert model.train().dropout_calls_per_pass == advance() == 0


class FakeRank(distributed.SingleProcess):
    """Rank `rank` of `size` with collectives that do nothing: each simulated rank
    computes only its shard, and the test sums the shards' gradients itself."""

    def __init__(self, rank, size):
        super().__init__()
        self.rank, self.size = rank, size

    def allgather(self, obj):
        return [obj] * self.size

    def default_threads(self):
        return 1


@pytest.mark.parametrize("size", [2, 4])
def test_one_step_shared_by_simulated_ranks_sums_to_the_one_process_gradient(size):
    cfg = config_from_dict({**CONFIG, "debug": True, "threads": 1, "gradient_accumulation_steps": 4},
                           source="test.yaml")
    trainers = [Trainer(cfg, verbose=False, world=distributed.SingleProcess())]
    trainers += [Trainer(cfg, verbose=False, world=FakeRank(r, size)) for r in range(size)]
    grads = []
    for t in trainers:
        t.model.dropout_calls = 5   # some point of a run: every micro-batch's seed depends on it
        step = t.optimizer.step
        t.optimizer.step = lambda t=t, step=step: (grads.append(t.model.grad_block.copy()), step())[1]
        t.model.train()
    tok, method = trainers[0].tok, trainers[0].method
    seqs = [method.sequence(tok, ex, 1, random.Random(0)) for ex in trainers[0].train_set[:16]]
    group = [seqs[i:i + 4] for i in range(0, 16, 4)]
    done = [t.train_step(group) for t in trainers]
    single, shards = grads[0], grads[1:]
    assert [j for j, _ in done[0]] == [0, 1, 2, 3]
    assert [[j for j, _ in d] for d in done[1:]] == [list(range(r, 4, size)) for r in range(size)]
    # the same micro-batch losses (same batches, dropout seeds, scale), bit for bit
    assert sorted(x for d in done[1:] for x in d) == done[0]
    summed = np.sum(shards, axis=0)
    scale = np.abs(single).max()
    assert np.abs(summed - single).max() <= REL_GRADS * scale
    assert np.abs(shards[0] - single).max() > 0.05 * scale    # one shard alone is not the step's gradient
    assert all(t.model.dropout_calls == 5 + 4 for t in trainers)
    assert all(t.world.allreduce_calls == 1 for t in trainers)


# ----------------------------------------------------------------------- under mpirun

WORKER = r'''
import json, os, sys
import numpy as np
import coconut
from coconut import cli, distributed
from coconut import train as train_mod

out, argv = sys.argv[1], sys.argv[2:]
rec = {"saves": [], "allreduce_blocks": [], "grad_norms": []}
w = distributed.world()
save = train_mod.save_checkpoint
def counting_save(path, *a, **k):
    rec["saves"].append(os.path.basename(path))
    return save(path, *a, **k)
train_mod.save_checkpoint = counting_save
allreduce = w.allreduce_sum_
def watched_allreduce(block):
    rec["allreduce_blocks"].append(int(block.ctypes.data))
    return allreduce(block)
w.allreduce_sum_ = watched_allreduce
step = coconut.AdamW.step
def watched_step(self):
    rec["grad_norms"].append(float(np.linalg.norm(self.model.grad_block.astype(np.float64))))
    if len(rec["grad_norms"]) == 1:
        np.save(os.path.join(out, f"grad{w.rank}.npy"), self.model.grad_block)
    return step(self)
coconut.AdamW.step = watched_step
run = train_mod.Trainer.run
def watched_run(self, *args, **kwargs):
    result = run(self, *args, **kwargs)
    rec["grad_block"] = int(self.model.grad_block.ctypes.data)
    np.save(os.path.join(out, f"params{w.rank}.npy"), self.model.param_block)
    return result
train_mod.Trainer.run = watched_run
rc = cli.main(argv)
rec.update(rank=w.rank, size=w.size, local_size=w.local_size, rc=rc, threads=coconut.get_num_threads())
with open(os.path.join(out, f"rank{w.rank}.json"), "w") as f:
    json.dump(rec, f)
sys.exit(rc)
'''


class Run:
    def __init__(self, proc, out, save_dir):
        self.proc, self.save_dir = proc, save_dir
        self.ranks = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out)) if f.endswith(".json")]
        self.params = [np.load(os.path.join(out, f"params{r['rank']}.npy")) for r in self.ranks
                       if os.path.exists(os.path.join(out, f"params{r['rank']}.npy"))]
        self.grad = np.load(os.path.join(out, "grad0.npy")) if os.path.exists(os.path.join(out, "grad0.npy")) else None

    def metrics(self):
        with open(os.path.join(self.save_dir, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if "epoch" in json.loads(line) and "stage" in json.loads(line)]


def launch(base, n, name, *sets, resume=False, timeout=150, mpirun=None):
    """`coconut train` through the watching worker: plainly for n = 1 (a one-process
    world, 1 thread: the CPU may be shared), under `mpirun -np n` otherwise (default
    threads: cores / ranks). `mpirun`: the command line up to -np, if not this machine's
    mpirun without binding."""
    config = base / "run.yaml"
    if not config.exists():
        config.write_text(json.dumps({**CONFIG, "save_path": str(base / "runs")}))
    out = base / f"out-{name}-{len(list(base.glob(f'out-{name}-*')))}"
    out.mkdir()
    worker = base / "worker.py"
    worker.write_text(WORKER)
    args = ["train", str(config), "--set", f"name={name}", *[a for s in sets for a in ("--set", s)]]
    args += ["--resume"] if resume else []
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    env.pop("OMP_NUM_THREADS", None)
    if n == 1:
        cmd = [sys.executable, str(worker), str(out), *args, "--set", "threads=1"]
    else:
        cmd = [*(mpirun or [MPIRUN, "--bind-to", "none"]), "-np", str(n), "-x", "PYTHONPATH", sys.executable,
               str(worker), str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(base))
    return Run(proc, out, str(base / "runs" / name))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not (MPIRUN and HAVE_MPI4PY):
        pytest.skip("needs mpirun and mpi4py")
    base = tmp_path_factory.mktemp("dp")
    one = launch(base, 1, "one")
    assert one.proc.returncode == 0, one.proc.stderr
    two = launch(base, 2, "two")
    assert two.proc.returncode == 0, two.proc.stdout + two.proc.stderr
    return base, one, two


def rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@needs_mpi
def test_two_processes_follow_the_one_process_run(runs):
    base, one, two = runs
    assert [(r["rank"], r["size"], r["local_size"]) for r in two.ranks] == [(0, 2, 2), (1, 2, 2)]
    assert [(r["rank"], r["size"]) for r in one.ranks] == [(0, 1)]
    steps = 2 * STEPS_PER_EPOCH
    # ONE all-reduce per optimizer step, in place on the model's own gradient block
    for r in two.ranks:
        assert len(r["allreduce_blocks"]) == steps and set(r["allreduce_blocks"]) == {r["grad_block"]}
        assert len(r["grad_norms"]) == steps
    # the summed gradient of the first step is the one-process gradient
    assert rel_diff(two.grad, one.grad) <= REL_GRADS
    np.testing.assert_allclose(two.ranks[0]["grad_norms"], one.ranks[0]["grad_norms"], rtol=1e-3)
    # every rank ends with the same weights, and they are the one-process weights
    assert np.array_equal(two.params[0], two.params[1])
    assert rel_diff(two.params[0], one.params[0]) <= REL_PARAMS
    first_epoch = coconut.GPT2.from_pretrained(os.path.join(one.save_dir, "checkpoint_1")).param_block
    assert rel_diff(first_epoch, one.params[0]) > 100 * REL_PARAMS   # the weights did move
    # rank 0 alone writes checkpoints and metrics; the summary is printed once
    assert two.ranks[0]["saves"] == ["checkpoint_1", "checkpoint_2"] and two.ranks[1]["saves"] == []
    assert two.proc.stdout.count("checkpoints in") == 1 and two.proc.stdout.count("run summary") == 1
    assert two.proc.stdout.count("epoch 2/2 (stage 1)") == 1
    m1, m2 = one.metrics(), two.metrics()
    assert [l["epoch"] for l in m2] == [1, 2] and [l["global_step"] for l in m2] == [4, 8]
    for a, b in zip(m1, m2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert (b["val_accuracy"], b["mean_new_tokens"]) == (a["val_accuracy"], a["mean_new_tokens"])
    state = json.load(open(os.path.join(two.save_dir, "checkpoint_2", "trainer_state.json")))
    assert state["dropout_calls"] == 2 * steps and state["global_step"] == steps
    # default threads: this machine's cores shared by its 2 ranks (--bind-to none)
    cores = len(os.sched_getaffinity(0))
    assert [r["threads"] for r in two.ranks] == [max(1, cores // 2)] * 2


@needs_mpi
def test_resume_with_another_number_of_processes(runs):
    base, one, _ = runs
    first = launch(base, 2, "mixed", "num_epochs=1")
    assert first.proc.returncode == 0, first.proc.stderr
    assert sorted(e for e in os.listdir(first.save_dir) if e.startswith("checkpoint")) == ["checkpoint_1"]
    after_one = first.params[0].copy()
    resumed = launch(base, 1, "mixed", resume=True)
    assert resumed.proc.returncode == 0, resumed.proc.stderr
    assert "resuming from" in resumed.proc.stdout
    assert rel_diff(after_one, resumed.params[0]) > 100 * REL_PARAMS
    assert rel_diff(resumed.params[0], one.params[0]) <= REL_PARAMS
    assert [l["epoch"] for l in resumed.metrics()] == [1, 2]


@needs_mpi
def test_accumulation_not_divisible_by_the_ranks_stops_every_rank(tmp_path):
    run = launch(tmp_path, 2, "odd", "gradient_accumulation_steps=1", timeout=60)
    assert run.proc.returncode == 2
    assert "key 'gradient_accumulation_steps': 1 is not a multiple of the 2 MPI processes" in run.proc.stderr
    assert not os.path.exists(run.save_dir)
