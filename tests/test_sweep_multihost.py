"""The MPI executor of coconut.sweep: `mpirun -np 3 python -m mpi4py.futures -m coconut
sweep SPEC` (rank 0 plans and writes the results, ranks 1 and 2 train a row each) on
this machine, and across two emulated hosts (network namespaces, TCP only:
netns_hosts.py, the `hosts` fixture of test_multihost.py) with a run folder both see.

Skipped, saying why, without mpirun or mpi4py, and for the hosts without root, iproute2
or the right to make namespaces.
"""
import json
import os
import subprocess
import sys

import pytest

from coconut.sweep import read_results
from test_distributed import HAVE_MPI4PY, MPIRUN
from test_multihost import hosts  # noqa: F401  (the fixture)
from test_sweep import TINY

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
needs_mpi = pytest.mark.skipif(not (MPIRUN and HAVE_MPI4PY),
                               reason="needs mpirun and mpi4py (apt-get install libopenmpi-dev openmpi-bin; "
                                      "pip install mpi4py)")


def sweep_under_mpi(tmp_path, mpirun):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({**TINY, "out": str(tmp_path / "out")}))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    cmd = [*mpirun, "-np", "3", "-x", "PYTHONPATH", sys.executable, "-m", "mpi4py.futures", "-m", "coconut",
           "sweep", str(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 rows: 0 finished (kept), 0 to resume, 0 to re-run (config changed), 2 new" in proc.stdout
    lines = read_results(str(tmp_path / "out" / "results.jsonl"))
    assert [x["name"] for x in lines] == ["tiny-coconut", "tiny-cot"]
    assert all(x["final_epoch"] == 3 and "k0" in x for x in lines)
    return lines


@needs_mpi
def test_mpi_workers_on_one_machine(tmp_path):
    sweep_under_mpi(tmp_path, [MPIRUN, "--bind-to", "none", "--oversubscribe"])


@needs_mpi
def test_mpi_workers_across_two_hosts(hosts, tmp_path):  # noqa: F811
    lines = sweep_under_mpi(tmp_path, hosts.mpirun(MPIRUN))
    # the rows ran on the workers' hosts (each names the namespace it ran in)
    assert {x["host"] for x in lines} <= set(hosts.names), [x["host"] for x in lines]
