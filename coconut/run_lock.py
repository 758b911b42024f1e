"""One training run per run folder: `save_path/name/run.lock`.

Two runs writing the same checkpoints would overwrite each other's epochs and mix their
metrics lines. The lock is `fcntl.flock` on the open lock file, so the kernel drops it
when the holder exits, however it exits (a SIGKILL leaves no stuck lock); the file holds
the holder's PID and host only for the message a second run gets.

    with RunLock(cfg.save_dir):
        clean_stale_temporaries(cfg.save_dir)   # every temporary there is now stale
        ...train...

On a file system without flock (some network mounts) the PID stands in for it: a lock
file naming a process that no longer runs on this host is taken over.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

from coconut.checkpoints import writing
from coconut.config_fields import ConfigError

LOCK_FILE = "run.lock"


class RunFolderBusy(ConfigError):
    """Another live process holds the run folder's lock; the message names the folder and
    that process."""


class RunLock:
    """The run folder's lock: `acquire()` / `release()`, or a `with` block. Only one
    process (under MPI: rank 0) takes it."""

    def __init__(self, save_dir: str):
        self.save_dir = save_dir
        self.path = os.path.join(save_dir, LOCK_FILE)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock, creating the folder; RunFolderBusy when a live process holds it,
        SaveError when the folder cannot be written."""
        if self._fd is not None:
            return self
        with writing(self.path):
            os.makedirs(self.save_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy(_read_holder(fd)) from None
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                holder = _read_holder(fd)   # no flock here: the PID in the file is the lock
                if holder and _may_be_running(holder):
                    raise self._busy(holder) from None
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, record.encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up. The file stays (removing it would let a process that opened
        it before the removal and one that creates it anew both hold "the" lock); it is
        emptied so that it names no one."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)   # closing drops the flock

    def _busy(self, holder: dict) -> RunFolderBusy:
        who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}" if holder
               else "a process that has not written its PID yet")
        return RunFolderBusy(f"{self.save_dir} is in use by another coconut run ({who}; lock file {self.path}): "
                             "wait for it to end, or choose another name or save_path")

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def _read_holder(fd: int) -> dict:
    """What the holder wrote: {"pid", "host", "started"}, or {} (none yet, or unreadable)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _may_be_running(holder: dict) -> bool:
    """False only for a PID known not to run on this host (another host's: unknowable)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
