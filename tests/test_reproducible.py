"""Reproducible mode (COCONUT_REPRODUCIBLE=1): it pins OpenBLAS's kernel set before the
library loads, and refuses what would defeat it. OpenBLAS reads OPENBLAS_CORETYPE once
per process, so the mode is checked in fresh interpreters."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coconut
from coconut import reproducible


def run_python(code, **env):
    """Run `code` in a fresh interpreter that imports this checkout's coconut."""
    base = {k: v for k, v in os.environ.items() if k not in ("COCONUT_REPRODUCIBLE", "OPENBLAS_CORETYPE")}
    base["PYTHONPATH"] = os.pathsep.join([str(Path(coconut.__file__).resolve().parents[1]),
                                          base.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True)


@pytest.mark.skipif(bool(reproducible.unsupported_cpu()), reason="the CPU lacks AVX2/FMA: the mode refuses to run")
def test_mode_runs_openblas_haswell_kernels():
    code = "import coconut; i = coconut.blas_info(); print(i['core'], i['reproducible'])"
    on = run_python(code, COCONUT_REPRODUCIBLE="1")
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["Haswell", "True"]
    # the same kernel set named in OpenBLAS's spelling is no conflict
    same = run_python(code, COCONUT_REPRODUCIBLE="1", OPENBLAS_CORETYPE="haswell")
    assert same.returncode == 0 and same.stdout.split() == ["Haswell", "True"], same.stderr
    off = run_python(code, COCONUT_REPRODUCIBLE="0")
    assert off.returncode == 0 and off.stdout.split()[1] == "False", off.stderr


@pytest.mark.skipif(bool(reproducible.unsupported_cpu()), reason="Sandybridge's kernels need AVX")
def test_blas_info_names_a_kernel_set_pinned_by_the_environment():
    """OPENBLAS_CORETYPE overrides the CPU's own kernel set (a host may set it for
    bitwise repeats across machines, at a cost in speed): blas_info says so."""
    code = "import coconut; i = coconut.blas_info(); print(i['core'], i['core_pinned'], i['reproducible'])"
    pinned = run_python(code, OPENBLAS_CORETYPE="Sandybridge")
    assert pinned.returncode == 0 and pinned.stdout.split() == ["Sandybridge", "Sandybridge", "False"], pinned.stderr
    free = run_python(code)
    assert free.returncode == 0 and free.stdout.split()[1] == "None", free.stderr


def test_conflicting_coretype_is_refused():
    out = run_python("import coconut", COCONUT_REPRODUCIBLE="1", OPENBLAS_CORETYPE="SkylakeX")
    assert out.returncode != 0
    assert "OPENBLAS_CORETYPE='SkylakeX'" in out.stderr and "Haswell" in out.stderr, out.stderr


def test_unknown_setting_is_refused():
    out = run_python("import coconut", COCONUT_REPRODUCIBLE="maybe")
    assert out.returncode != 0 and "COCONUT_REPRODUCIBLE='maybe'" in out.stderr, out.stderr


def test_cpu_without_avx2_is_refused(monkeypatch):
    monkeypatch.setenv("COCONUT_REPRODUCIBLE", "1")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(reproducible, "_cpu_flags", lambda: {"sse4_2", "avx"})
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "x86_64")
    with pytest.raises(RuntimeError, match="AVX2 and FMA; this one lacks avx2/fma "):
        reproducible.apply()
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "aarch64")
    with pytest.raises(RuntimeError, match="this one is aarch64, not x86-64"):
        reproducible.apply()
    assert "OPENBLAS_CORETYPE" not in os.environ


def test_library_loaded_with_other_kernels_is_refused():
    reproducible.check_loaded("Haswell")
    with pytest.raises(RuntimeError, match="runs its SkylakeX kernels, not Haswell's"):
        reproducible.check_loaded("SkylakeX")


def test_mode_off_by_default(monkeypatch):
    monkeypatch.delenv("COCONUT_REPRODUCIBLE", raising=False)
    assert reproducible.apply() is False
