"""The run folder's lock (coconut.run_lock): a second process is refused naming the
first's PID, the lock is free again once the holder exits (even by SIGKILL), and a lock
file left by a dead process is taken over."""
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

import coconut
from coconut.checkpoints import SaveError
from coconut.config_fields import ConfigError
from coconut.run_lock import LOCK_FILE, RunFolderBusy, RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(coconut.__file__)))
HOLD = ("import sys; from coconut.run_lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); sys.stdin.read()")


def holder(save_dir):
    """A process holding the lock until its stdin closes."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(save_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout.readline() == "held\n"
    return p


def test_a_second_run_is_refused_naming_the_first(tmp_path):
    run = tmp_path / "run"
    first = holder(run)
    try:
        with pytest.raises(RunFolderBusy, match=re.escape(f"{run} is in use by another coconut run "
                                                          f"(pid {first.pid} on {socket.gethostname()}")) as e:
            RunLock(str(run)).acquire()
        assert isinstance(e.value, ConfigError) and "choose another name or save_path" in str(e.value)
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    with RunLock(str(run)) as lock:   # the first one ended: free
        assert lock.held
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):   # one holder even in one process
            RunLock(str(run)).acquire()
    assert not lock.held and (run / LOCK_FILE).read_text() == ""
    RunLock(str(run)).acquire().release()


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    first = holder(tmp_path)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    stale = json.loads((tmp_path / LOCK_FILE).read_text())
    assert stale["pid"] == first.pid   # its PID is still written there
    lock = RunLock(str(tmp_path)).acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


def test_without_flock_a_dead_pid_is_taken_over(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr("fcntl.flock", no_flock)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait(timeout=30)
    host = socket.gethostname()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": gone.pid, "host": host, "started": "then"}))
    lock = RunLock(str(tmp_path)).acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()} on {host}"):   # a live PID is respected
        RunLock(str(tmp_path)).acquire()
    lock.release()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(RunFolderBusy, match="pid 1 on elsewhere"):   # another host's: cannot tell, refused
        RunLock(str(tmp_path)).acquire()


def test_a_read_only_save_path_is_named(tmp_path, monkeypatch):
    def read_only(path, *args, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    monkeypatch.setattr(os, "open", read_only)
    path = os.path.join(tmp_path, LOCK_FILE)
    with pytest.raises(SaveError, match=re.escape(f"cannot write {path} (Read-only file system); it is not "
                                                  "writable: set save_path")):
        RunLock(str(tmp_path)).acquire()
