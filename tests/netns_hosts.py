"""Several "hosts" on one Linux machine, for multi-host MPI runs (needs root and iproute2).

Each host is a network namespace PREFIX-hI with one interface, eth0, at 10.213.77.(I+1)/24.
The eth0s are veth pairs whose other ends are ports hI of a bridge in a switch namespace
PREFIX-sw, so ranks on different hosts can talk only over TCP through that bridge, and
the ports' byte counters say how much they did. Nothing is added to the machine's own
network namespace (its firewall, if any, never sees the traffic), and separate PREFIXes
give separate networks, so two runs at once do not meet.

OpenMPI starts its daemons through `netns_agent` in place of ssh: the host names of the
hostfile are the namespaces' names, and the agent runs the daemon's command in the
namespace of that name. mpirun itself runs in host 0's namespace, the one place from
which every host's address can be reached.

    python tests/netns_hosts.py up [--hosts 2] [--prefix coconut]   # prints the mpirun line
    python tests/netns_hosts.py down [--prefix coconut]

`up` first removes what an earlier `up` with the same prefix left; `down` removes the
namespaces (and with them their interfaces) and the hostfile.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

SUBNET = "10.213.77.0/24"
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_agent")


def _ip(*args: str) -> str:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if p.returncode:
        raise OSError(f"`ip {' '.join(args)}` failed: {p.stderr.strip()}")
    return p.stdout


def unavailable() -> str | None:
    """Why hosts cannot be emulated here (None: they can be)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "needs `ip` (apt-get install iproute2)"
    if shutil.which("unshare") is None or shutil.which("hostname") is None:
        return "needs `unshare` and `hostname` (apt-get install util-linux hostname)"
    return None


class Hosts:
    """n emulated hosts named PREFIX-h0 .. PREFIX-h{n-1}; a context manager that brings
    them up and removes them again."""

    def __init__(self, n: int, prefix: str = "coconut"):
        if not 1 <= n <= 200:
            raise ValueError(f"hosts: {n} is not between 1 and 200")
        self.prefix, self.names = prefix, [f"{prefix}-h{i}" for i in range(n)]
        self.switch = f"{prefix}-sw"
        self.hostfile = f"/tmp/{prefix}-hostfile"

    def up(self) -> "Hosts":
        self.down()
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, ns in enumerate(self.names):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", self.switch, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("-n", self.switch, "link", "set", f"h{i}", "master", "br0", "up")
                _ip("-n", ns, "addr", "add", f"10.213.77.{i + 1}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
        except OSError:
            self.down()
            raise
        with open(self.hostfile, "w") as f:
            f.writelines(f"{ns} slots=1\n" for ns in self.names)
        return self

    def down(self) -> None:
        mine = [line.split()[0] for line in _ip("netns", "list").splitlines()
                if line.split() and line.split()[0].startswith(self.prefix + "-")]
        for ns in mine:
            _ip("netns", "delete", ns)
        if os.path.exists(self.hostfile):
            os.remove(self.hostfile)

    def __enter__(self) -> "Hosts":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def mpirun(self, mpirun: str = "mpirun") -> list[str]:
        """The mpirun command line (up to -np) for one rank per host over TCP: the ob1
        point-to-point layer (not UCX, which could take shared memory) with only the tcp
        and self transports, all traffic on the hosts' subnet, no binding (the hosts
        share this machine's cores). Like the agent's daemons, mpirun gets its host's name
        as hostname (a UTS namespace of its own)."""
        return ["ip", "netns", "exec", self.names[0], "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
                self.names[0], mpirun, "--hostfile", self.hostfile,
                "--mca", "plm_rsh_agent", AGENT, "--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
                "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET,
                "--bind-to", "none", "--oversubscribe"]

    def port_bytes(self) -> list[tuple[int, int]]:
        """(bytes sent, bytes received) by each host over its link so far: its switch
        port's counters (the port receives what the host sends)."""
        def counter(i, name):
            return int(_ip("netns", "exec", self.switch, "cat", f"/sys/class/net/h{i}/statistics/{name}"))
        return [(counter(i, "rx_bytes"), counter(i, "tx_bytes")) for i in range(len(self.names))]


def main() -> None:
    ap = argparse.ArgumentParser(description="Emulated hosts for multi-host MPI runs.")
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--prefix", default="coconut")
    args = ap.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(f"netns_hosts: {reason}")
    hosts = Hosts(args.hosts, args.prefix)
    if args.action == "down":
        return hosts.down()
    hosts.up()
    print(f"{len(hosts.names)} hosts up ({', '.join(hosts.names)}); hostfile {hosts.hostfile}. Run with:\n"
          f"  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 {' '.join(hosts.mpirun())} "
          f"-np {len(hosts.names)} python -m coconut train CONFIG")


if __name__ == "__main__":
    main()
