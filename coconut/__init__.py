"""coconut: Coconut (chain of continuous thought) for GPT-2 on a C core."""
import ctypes as _ctypes
import os as _os

from . import reproducible as _reproducible

# a kernel set named in the environment, which OpenBLAS takes instead of the CPU's own
_CORETYPE_ENV = _os.environ.get("OPENBLAS_CORETYPE") or None
# before OpenBLAS loads: it reads OPENBLAS_CORETYPE once, when the library is loaded
_REPRODUCIBLE = _reproducible.apply()


def _preload_openblas():
    # The core links scipy-openblas32's library; loading it first by its full path
    # lets the extension find it wherever pip put the two packages.
    try:
        import scipy_openblas32
    except ImportError:  # a build against a system OpenBLAS (COCONUT_BLAS=system)
        return
    path = _os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")
    if _os.path.exists(path):
        _ctypes.CDLL(path, mode=_ctypes.RTLD_GLOBAL)


_preload_openblas()

from . import _C  # noqa: E402

if _REPRODUCIBLE:
    _reproducible.check_loaded(_C.blas_info()["core"])
    _C.set_bf16_kernel("emulated")   # the native kernel exists on some CPUs only

from .config import GPT2Config  # noqa: E402
from .model import GPT2  # noqa: E402
from .thought_spec import ThoughtSpec  # noqa: E402
from .optim import AdamW  # noqa: E402
from . import tokenizer  # noqa: E402
from .version import package_version as _package_version  # noqa: E402

__version__ = _package_version()

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads


def set_bf16_kernel(kernel: str) -> None:
    """Which kernel the products of a bf16 model run on, for the whole process: "auto"
    (the default: "native" where the CPU has AVX512-BF16, else "emulated"), "emulated"
    (operands rounded to bf16, fp32 sgemm: the same numbers on every CPU) or "native"
    (VDPBF16PS; a RuntimeError where the CPU lacks it). Both compute bf16 products with
    fp32 sums; they differ in the order of the sums. blas_info()["bf16"] names the one in
    use. Reproducible mode (coconut.reproducible) sets "emulated"."""
    _C.set_bf16_kernel(kernel)


def blas_info() -> dict:
    """The BLAS library the core uses, its version, the kernel set (core) OpenBLAS chose
    for this CPU, the thread settings, whether reproducible mode (COCONUT_REPRODUCIBLE,
    see coconut.reproducible) pinned the kernel set, and core_pinned: the kernel set the
    environment's OPENBLAS_CORETYPE named when coconut loaded (None: OpenBLAS chose)."""
    info = dict(_C.blas_info(), reproducible=_REPRODUCIBLE, core_pinned=_CORETYPE_ENV)
    parts = info["config"].split()
    info["version"] = parts[1] if len(parts) > 1 and parts[0] == "OpenBLAS" else info["config"]
    return info


def pretrained(name: str, overrides=(), **options):
    """A trained model that ships with the package ("prosqa-coconut", ...; see
    coconut.shipped), assembled for evaluation: a coconut.assembly.Run."""
    from .shipped import pretrained as load
    return load(name, overrides, **options)


def __getattr__(name: str):
    """A submodule as an attribute (`coconut.evaluate.k_sweep`), imported when first used."""
    import importlib
    import importlib.util
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GPT2Config", "GPT2", "AdamW", "ThoughtSpec", "set_num_threads", "get_num_threads", "set_bf16_kernel", "blas_info",
           "pretrained"]
