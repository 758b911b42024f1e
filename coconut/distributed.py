"""Data-parallel training over MPI processes, on one machine or many.

    mpirun -np 4 coconut train CONFIG          # or: mpirun -np 4 python -m coconut train CONFIG

`world()` is the process group this process belongs to: a `SingleProcess` (rank 0 of 1)
unless the process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun`), in which
case it is an `MPIWorld` over `mpi4py`'s COMM_WORLD. mpi4py is optional: it is imported
only when a launcher's environment says so (or COCONUT_MPI=1), and a launch without it
fails with one line saying what to install. COCONUT_MPI=0 ignores the launcher.

How an optimizer step is shared out (the trainer's `train_step`). The global batch is
the config's: batch_size_training x gradient_accumulation_steps examples, whatever the
number of processes N. Its micro-batches are j = 0 .. acc-1 in the single-process
order; rank r computes the micro-batches j with j mod N == r, whole, each with the
single process's grad_scale 1/acc and the dropout seed it would have there
(`model.dropout_calls` set from the step's first call plus j). The gradients are then
summed in place, ONE all-reduce per step on the contiguous `model.grad_block`, so
every rank holds the single process's gradient (up to summation order) and applies the
same AdamW step. gradient_accumulation_steps must therefore be a multiple of N.

Validation loss and generation accuracy are sharded the same way by evaluation batch
(batch k to rank k mod N) and gathered, so every rank gets the single-process figures.
Only rank 0 writes checkpoints, metrics and progress output.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

# Environment variables by which launchers tell a process that it is one of a group.
LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")
LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")

INSTALL_HINT = "install MPI and mpi4py, e.g. `apt-get install libopenmpi-dev openmpi-bin && pip install mpi4py`"


class DistributedError(RuntimeError):
    """The MPI setup cannot work (mpi4py missing under a launcher, ranks that disagree)."""


class SingleProcess:
    """One process: every collective is the identity."""

    rank = 0
    size = 1
    local_size = 1

    def __init__(self):
        self.allreduce_calls = 0
        self.allreduce_seconds = 0.0

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum_(self, block: np.ndarray) -> None:
        self.allreduce_calls += 1

    def allgather(self, obj) -> list:
        return [obj]

    def bcast_(self, *arrays: np.ndarray) -> None:
        pass

    def barrier(self) -> None:
        pass

    def abort(self, code: int) -> None:
        sys.exit(code)

    def default_threads(self) -> int | None:
        """None: leave the core's own default (OMP_NUM_THREADS, else every core)."""
        return None

    def describe(self) -> str:
        return "one process"


class MPIWorld(SingleProcess):
    """COMM_WORLD of an MPI launch, through mpi4py."""

    def __init__(self, comm, MPI):
        super().__init__()
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # The processes on this machine: they share its cores.
        self.local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_size = self.local.Get_size()

    def allreduce_sum_(self, block: np.ndarray) -> None:
        """Sum `block` over the ranks in place: one message, no copy on our side."""
        if block.dtype != np.float32 or not block.flags.c_contiguous:
            raise TypeError("allreduce_sum_ needs a contiguous float32 block (model.grad_block)")
        t = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, block, op=self.MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - t
        self.allreduce_calls += 1

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def bcast_(self, *arrays: np.ndarray) -> None:
        """Copy rank 0's arrays into every rank's, in place."""
        for a in arrays:
            self.comm.Bcast(a, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def default_threads(self) -> int:
        """This machine's cores shared evenly among its ranks: the cores any of them may
        run on (their CPU affinities, united) divided by their number, and never more
        than the cores this rank is bound to (mpirun binds each rank to one core by
        default for 2 ranks or fewer)."""
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        union = set().union(*self.local.allgather(sorted(mine)))
        return max(1, min(len(mine), len(union) // self.local_size))

    def describe(self) -> str:
        return f"{self.size} MPI processes"


_WORLD = None


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (COCONUT_MPI=1/0 overrides)."""
    forced = os.environ.get("COCONUT_MPI", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return any(os.environ.get(v) for v in LAUNCHER_SIZE_VARS + LAUNCHER_RANK_VARS)


def world():
    """The process group of this process, built once (collectively, under MPI)."""
    global _WORLD
    if _WORLD is None:
        if not launched_by_mpi():
            _WORLD = SingleProcess()
        else:
            try:
                from mpi4py import MPI
            except ImportError as e:
                raise DistributedError(f"started by an MPI launcher, but mpi4py cannot be imported ({e}): "
                                       f"{INSTALL_HINT}") from None
            comm = MPI.COMM_WORLD
            _WORLD = MPIWorld(comm, MPI) if comm.Get_size() > 1 else SingleProcess()
    return _WORLD


def current():
    """The world if `world()` has built it, else None (no MPI call is made)."""
    return _WORLD


# ----------------------------------------------------------------------- sharding


def shard(n: int, rank: int, size: int) -> range:
    """The items (micro-batches of a step, evaluation batches) that `rank` computes out
    of n: every size-th one, starting at its rank."""
    return range(rank, n, size)


def check_accumulation(gradient_accumulation_steps: int, size: int, source: str = "config") -> None:
    """Micro-batches are shared out whole, so each step's must divide evenly over the ranks."""
    if size > 1 and gradient_accumulation_steps % size:
        from coconut.run_config import ConfigError
        acc = gradient_accumulation_steps
        raise ConfigError(
            f"{source}: key 'gradient_accumulation_steps': {acc} is not a multiple of the {size} MPI processes. "
            f"Each optimizer step's {acc} micro-batches (of batch_size_training examples each) are shared out "
            f"whole, micro-batch j to rank j mod {size}, so that the update equals the one-process update: "
            f"start a number of processes that divides {acc}, or make gradient_accumulation_steps a multiple "
            f"of {size} (the loss is averaged per micro-batch, so batch_size_training is part of the recipe)")


def configure_threads(w, explicit: int | None) -> int | None:
    """The C core's threads for this rank: `explicit` (the config's `threads`) if set;
    else under MPI OMP_NUM_THREADS if exported, else cores / ranks on this machine.
    Returns the number set (None: the core's default was left)."""
    import coconut
    if explicit:
        coconut.set_num_threads(explicit)
        return explicit
    if w.size > 1:
        threads = w.default_threads()   # collective: every rank calls it
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if env.isdigit() and int(env) > 0:
            threads = int(env)
        coconut.set_num_threads(threads)
        return threads
    return None
