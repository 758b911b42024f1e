"""Reproducible mode: COCONUT_REPRODUCIBLE=1 makes a run repeat bitwise on other x86 CPUs.

What varies between CPUs is OpenBLAS's kernel set. scipy-openblas32 is a DYNAMIC_ARCH
build: when the library loads it picks the kernels for the CPU it finds (Haswell's on
an AVX2 machine, SkylakeX's on an AVX-512 one, ...), and each set sums a matrix
product's terms in its own order, so the same training run rounds differently. Over a
few thousand optimizer steps those differences grow until some of the validation
answers change: the prosqa-cpu Coconut row ends at 66.3% with Haswell's kernels and
62.0% with SkylakeX's (tests/test_reproduce_slow.py gives every epoch's figures).

The mode sets OPENBLAS_CORETYPE=Haswell for this process before coconut loads OpenBLAS,
so every CPU with AVX2 and FMA (Intel since 2013, AMD since 2015) runs the same
kernels. It must be read before the library loads (coconut/__init__.py calls `apply`
first), and it refuses rather than guesses: a CPU without AVX2/FMA, an
OPENBLAS_CORETYPE set to another kernel set, or a library that was already loaded with
other kernels is an error.

The kernel set is one of two conditions. The other is one thread (`threads: 1`, or
coconut.set_num_threads(1)): with more, the core splits a product's output between
threads, and OpenBLAS's blocking of each share depends on its size. The C core itself
does not depend on the build's -march: it is C11 without fused multiply-adds
(-ffp-contract=off) or reassociation, so AVX-512 and AVX2 builds compute the same
values.

The cost is speed on CPUs whose own kernels are faster; on an AVX-512 Xeon (one thread):
sgemm 2048^3 and the prosqa-cpu train step (2 layers, 128 wide, batch 16, T = 64) are
slower by the figures in benchmarks/results/train_step_reproducible.json.
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
