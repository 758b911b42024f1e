"""Reproducible mode: with COCONUT_REPRODUCIBLE=1 a training run repeats bitwise on other
x86-64 CPUs.

What changes between CPUs is OpenBLAS's kernel set. scipy-openblas32 is a DYNAMIC_ARCH
build: when the library loads it picks the kernels for the CPU it finds (Haswell's on
an AVX2 machine, SkylakeX's on an AVX-512 one, ...), and each set orders a matrix
product's sums its own way. The rounding differences grow over thousands of optimizer
steps until validation answers change: on one AVX-512 machine, one thread, the same
build, the prosqa-cpu Coconut row's epochs differ by up to 25 of 300 answers between
Haswell's, SkylakeX's (its default) and Sandybridge's kernels, and it ended at 66.3%,
62.0% and 66.3% (with the full-grid core; tests/test_reproduce_slow.py pins every
epoch of the present core's run).

The mode sets OPENBLAS_CORETYPE=Haswell for this process before coconut loads OpenBLAS
(coconut/__init__.py calls `apply` first), so every CPU with AVX2 and FMA runs the same
kernels. It refuses rather than guesses: a CPU without AVX2/FMA, an OPENBLAS_CORETYPE
naming other kernels, or a library already loaded with other kernels is an error.
coconut.blas_info() reports the mode and the kernel set.

A bitwise repeat needs the mode and the same thread count; the recorded runs and the
regression test use one thread (`threads: 1`). Runs on two threads repeat each other
but not the one-thread run: the work is divided differently. The build does not
matter: the C core is compiled without fused multiply-adds (-ffp-contract=off) or
reassociation, so builds for -march=native (AVX-512) and x86-64-v3 train to the same
bits (checked on the whole prosqa-cpu Coconut row, thoughts included).

The cost is speed where the CPU's own kernels are faster; on an AVX-512 Xeon, one
thread, by CPU time (benchmarks/train_step.py --cpu-time; the records are
benchmarks/results/train_step_prosqa_cpu_{default,reproducible}.json; medians of four
runs each): sgemm 2048^3 at 0.62x (71 against 113 GFLOP/s), the prosqa-cpu train step
(2 layers, 128 wide, 1065 symbols, batch 16, T = 60) at 0.73x (14,050 against 19,140
tokens/s). On an AMD EPYC with AVX-512, SkylakeX's kernels run sgemm at twice
Haswell's rate, and the presets' step 1.28-1.54x faster (docs/results.md, where a
run's time goes). Where OpenBLAS picks Haswell's kernels itself (Intel CPUs with AVX2 and no
AVX-512) the mode costs nothing.
"""
from __future__ import annotations

import os
import platform

ENV = "COCONUT_REPRODUCIBLE"
CORE = "Haswell"


def requested() -> bool:
    """Whether COCONUT_REPRODUCIBLE asks for the mode ("1"/"true"/"yes" on; unset, "",
    "0"/"false"/"no" off); any other value is an error."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise RuntimeError(f"{ENV}={os.environ[ENV]!r}: use 1 to turn reproducible mode on, 0 or unset for off")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def unsupported_cpu() -> str:
    """Why this CPU cannot run the Haswell kernels ("" when it can)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"is {machine}, not x86-64"
    missing = {"avx2", "fma"} - _cpu_flags()
    return f"lacks {'/'.join(sorted(missing))} (flags in /proc/cpuinfo)" if missing else ""


def apply() -> bool:
    """Before OpenBLAS loads: when the mode is requested, check the CPU and pin the
    kernel set through OPENBLAS_CORETYPE. Returns whether the mode is on."""
    if not requested():
        return False
    why = unsupported_cpu()
    if why:
        raise RuntimeError(f"{ENV}=1 runs OpenBLAS's {CORE} kernels, which need an x86-64 CPU with AVX2 and FMA; "
                           f"this one {why}. Unset {ENV} to use this CPU's own kernels.")
    current = os.environ.get("OPENBLAS_CORETYPE")
    if current is not None and current.lower() != CORE.lower():
        raise RuntimeError(f"{ENV}=1 selects OpenBLAS's {CORE} kernels, but OPENBLAS_CORETYPE={current!r} asks for "
                           f"others: unset OPENBLAS_CORETYPE (or {ENV}) to choose one.")
    os.environ["OPENBLAS_CORETYPE"] = CORE
    return True


def check_loaded(core: str) -> None:
    """After the core is imported: OpenBLAS really runs the pinned kernels (it did not
    if the library was loaded earlier in the process, or is not a DYNAMIC_ARCH build)."""
    if core.lower() != CORE.lower():
        raise RuntimeError(f"{ENV}=1: OpenBLAS runs its {core} kernels, not {CORE}'s; it was loaded before coconut "
                           f"could choose (import coconut first) or it is a build without DYNAMIC_ARCH.")
