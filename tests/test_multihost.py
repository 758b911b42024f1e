"""Data-parallel training across hosts: MPI ranks on two emulated hosts (network
namespaces joined by veth links to a bridge, netns_hosts.py) that reach each other only
over TCP, against the one-process run: the tiny run of test_distributed.py, and a resume
that moves a run between 2 hosts and 1 process, both ways.

Tolerances: those of test_distributed.py for 2 processes on one machine (read there why),
since the ranks compute the same things and only the transport differs: the first step's
summed gradient within REL_GRADS = 1e-5 of max |g|, the final weights within
REL_PARAMS = 1e-5 of max |param|.

The link's byte counters show the gradients crossed it: every all-reduce must bring each
rank the other rank's whole gradient block (4 bytes a parameter), so over the run each
host sends and receives at least steps x block bytes through its link. Both hosts run on
this machine's cores, so each rank is given 1 thread.

Skipped, saying why, without root, iproute2, mpirun or mpi4py, or where namespaces
cannot be made (a container without the right to).
"""
import os

import numpy as np
import pytest

import netns_hosts
from test_distributed import HAVE_MPI4PY, MPIRUN, REL_GRADS, REL_PARAMS, STEPS_PER_EPOCH, launch, rel_diff


@pytest.fixture(scope="module")
def hosts():
    reason = netns_hosts.unavailable()
    if reason is None and not (MPIRUN and HAVE_MPI4PY):
        reason = "needs mpirun and mpi4py (apt-get install libopenmpi-dev openmpi-bin; pip install mpi4py)"
    if reason:
        pytest.skip(reason)
    two = netns_hosts.Hosts(2, prefix=f"coconut{os.getpid()}")
    try:
        two.up()
    except OSError as e:
        pytest.skip(f"network namespaces cannot be made here: {e}")
    yield two
    two.down()


def across(hosts, base, name, *sets, resume=False):
    """`coconut train` with one rank on each host, and the bytes each host sent and
    received over its link meanwhile."""
    before = hosts.port_bytes()
    run = launch(base, 2, name, "threads=1", *sets, resume=resume, mpirun=hosts.mpirun(MPIRUN), timeout=60)
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    run.traffic = [(s1 - s0, r1 - r0) for (s0, r0), (s1, r1) in zip(before, hosts.port_bytes())]
    return run


@pytest.fixture(scope="module")
def runs(hosts, tmp_path_factory):
    base = tmp_path_factory.mktemp("hosts")
    one = launch(base, 1, "one", timeout=60)
    assert one.proc.returncode == 0, one.proc.stderr
    return base, one, across(hosts, base, "two")


def test_two_hosts_over_tcp_follow_the_one_process_run(runs):
    base, one, two = runs
    steps = 2 * STEPS_PER_EPOCH
    # one rank on each host, as MPI sees it (the default threads share a host's cores)
    assert [(r["rank"], r["size"], r["local_size"]) for r in two.ranks] == [(0, 2, 1), (1, 2, 1)]
    assert all(len(r["allreduce_blocks"]) == steps for r in two.ranks)
    assert rel_diff(two.grad, one.grad) <= REL_GRADS
    assert np.array_equal(two.params[0], two.params[1])
    assert rel_diff(two.params[0], one.params[0]) <= REL_PARAMS
    # the gradients went over the veth links (a shared-memory transport would leave
    # them nearly still: the daemons' own messages are a few kB)
    block = two.grad.nbytes
    for sent, received in two.traffic:
        assert sent >= steps * block and received >= steps * block, (two.traffic, block)


def test_resume_moves_a_run_between_hosts_and_one_process(hosts, runs):
    base, one, _ = runs
    across(hosts, base, "hosts-then-one", "num_epochs=1")
    resumed = launch(base, 1, "hosts-then-one", resume=True, timeout=60)
    assert resumed.proc.returncode == 0, resumed.proc.stderr
    assert "resuming from" in resumed.proc.stdout
    assert rel_diff(resumed.params[0], one.params[0]) <= REL_PARAMS

    first = launch(base, 1, "one-then-hosts", "num_epochs=1", timeout=60)
    assert first.proc.returncode == 0, first.proc.stderr
    resumed = across(hosts, base, "one-then-hosts", resume=True)
    assert "resuming from" in resumed.proc.stdout
    assert rel_diff(resumed.params[0], first.params[0]) > 100 * REL_PARAMS   # the second epoch moved them
    assert rel_diff(resumed.params[0], one.params[0]) <= REL_PARAMS
    assert all(sent >= STEPS_PER_EPOCH * resumed.grad.nbytes for sent, _ in resumed.traffic)
