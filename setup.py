"""Builds the C core `coconut._C` from csrc/*.c with OpenMP and OpenBLAS.

OpenBLAS comes from PyPI's scipy-openblas32 (the build NumPy's own wheels use) unless
COCONUT_BLAS=system, which links a system OpenBLAS found by pkg-config (Debian:
libopenblas-dev). COCONUT_MARCH sets -march (default "native": the package is compiled
on the machine that runs it; set COCONUT_MARCH=x86-64-v3 or "" for a portable build).
COCONUT_SANITIZE=1 adds AddressSanitizer and UndefinedBehaviorSanitizer (.ci/sanitize).
"""
import glob
import os
import shlex
import subprocess

import numpy
from setuptools import Extension, setup


def blas_flags():
    if os.environ.get("COCONUT_BLAS", "scipy-openblas32") == "system":
        def pkg(flag):
            out = subprocess.run(["pkg-config", flag, "openblas"], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError("COCONUT_BLAS=system needs pkg-config and a system OpenBLAS "
                                   "(Debian: apt-get install pkg-config libopenblas-dev)")
            return shlex.split(out.stdout)
        return dict(define_macros=[("COCONUT_SYSTEM_BLAS", "1")], extra_compile_args=pkg("--cflags"),
                    extra_link_args=pkg("--libs"))
    import scipy_openblas32
    return dict(
        include_dirs=[scipy_openblas32.get_include_dir()],
        library_dirs=[scipy_openblas32.get_lib_dir()],
        libraries=[scipy_openblas32.get_library()],
        # at run time coconut/__init__.py preloads the library from the installed
        # scipy_openblas32; the relative rpath covers a plain site-packages layout too
        extra_link_args=["-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib"],
    )


blas = blas_flags()
march = os.environ.get("COCONUT_MARCH", "native")
compile_args = ["-O3", "-std=c11", "-fopenmp", "-Wall", "-Wno-unknown-pragmas",
                # let the clamps of the exp/tanh approximations and AdamW's sqrt vectorise;
                # neither changes a value (the core never reads errno or FP traps)
                "-fno-trapping-math", "-fno-math-errno",
                # no fused multiply-adds, so -march cannot change a value (an AVX-512 and
                # an AVX2 build compute the same bits; coconut.reproducible relies on it).
                # GCC's -std=c11 implies it; clang's default contracts.
                "-ffp-contract=off"]
if march:
    compile_args.append(f"-march={march}")
sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] \
    if os.environ.get("COCONUT_SANITIZE") == "1" else []
if sanitize:
    compile_args += sanitize + ["-fno-omit-frame-pointer", "-g"]

core = Extension(
    "coconut._C",
    sources=sorted(glob.glob("csrc/*.c")),
    depends=sorted(glob.glob("csrc/*.h")),
    include_dirs=[numpy.get_include(), "csrc"] + blas.get("include_dirs", []),
    library_dirs=blas.get("library_dirs", []),
    libraries=blas.get("libraries", []),
    define_macros=blas.get("define_macros", []),
    extra_compile_args=compile_args + blas.get("extra_compile_args", []),
    extra_link_args=["-fopenmp"] + sanitize + blas.get("extra_link_args", []),
)

setup(ext_modules=[core])
