"""The lock a training run holds on its output folder, so that two runs never write into one folder at once.

Owner of: <out-dir>/.run.lock, taken before anything else looks at the folder and held for the run's whole life
(with --resume too); who holds it (host, process id, start); noticing a lock whose holder is gone.

Why a lock file of our own and not fcntl/flock (which `filelock` uses): HiPerGator's /blue is a Lustre file system
on which flock is either cluster-wide or local to one node depending on how it is mounted, and an NFS lock held by
a node that died lingers at the server. Creating a file with O_CREAT | O_EXCL is atomic on local file systems, on
NFS (v3 and later) and on Lustre, and the file says who holds it. While the run lives, a thread touches the file
every HEARTBEAT_S seconds, so a holder on another node that has not touched it for STALE_S is known to be gone
(node failure); on the same host a holder whose process no longer exists (kill -9) is gone at once. A gone
holder's lock is taken over, with a note saying so; a live holder's stops the new run with one line naming it.
"""
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from output_files import WriteError
from runtime import UserError

HEARTBEAT_S = 30
STALE_S = 600  # 20 missed heartbeats: the holder's node is gone, or its file system has hung for 10 minutes


def _process_start(pid):
    """The start time of process `pid` (clock ticks since boot, from /proc), or None where /proc does not say;
    with the pid it tells a process from a later one that reused its number."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_alive(pid, start):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return start is None or _process_start(pid) in (None, start)


class RunLock:
    """`with RunLock(folder):` holds the folder's lock for the block; UserError if a live run holds it."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / ".run.lock"
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        for _ in range(3):  # a takeover that another process won is retried
            if self._create():
                self._heartbeat.start()
                return self
            holder, age = self._holder()
            if holder is None:  # it ended between our two looks
                continue
            gone = self._gone(holder, age)
            if gone is None:
                raise UserError(f"--out-dir {self.folder}: another run is using this folder ({self._who(holder)}, "
                                f"last sign of life {age:.0f} s ago): wait for it to end, or use another --out-dir")
            if self._take_over(holder):
                print(f"note: {self.path} was left by {self._who(holder)}, which {gone}: taking it over",
                      file=sys.stderr)
        raise UserError(f"--out-dir {self.folder}: another run took {self.path} at the same moment; try again")

    def __exit__(self, *exc):
        self._stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        if self._holder()[0] == self.owner:  # never remove a lock another run has taken over
            self.path.unlink(missing_ok=True)

    def _create(self):
        """Create the lock file holding our owner record; False if it exists already."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            raise WriteError(f"could not write {self.path}: {err.strerror}") from None
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.owner))
        except OSError as err:
            self.path.unlink(missing_ok=True)
            raise WriteError(f"could not write {self.path}: {err.strerror}") from None
        return True

    def _holder(self, path=None):
        """(the holder's record, or {} while it is being written or unreadable; seconds since its last touch)."""
        path = path or self.path
        try:
            age = time.time() - path.stat().st_mtime
            holder = json.loads(path.read_text() or "{}")
        except FileNotFoundError:
            return None, 0.0
        except (OSError, ValueError):
            return {}, age
        return (holder if isinstance(holder, dict) else {}), age

    def _gone(self, holder, age):
        """Why the holder is known to be gone, or None if it may still run."""
        if holder.get("host") == self.owner["host"] and isinstance(holder.get("pid"), int):
            return None if _process_alive(holder["pid"], holder.get("pid_start")) else "no longer runs"
        if age > STALE_S:  # another host's holder: only its silence tells
            return f"has not touched it for {age / 60:.0f} minutes (its node failed?)"
        return None

    def _take_over(self, holder):
        """Move the gone holder's lock aside (an atomic rename: of two processes doing this, one succeeds), unless
        what was moved is not that holder's, which then goes back."""
        aside = self.path.with_name(f".run.lock.gone{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        if self._holder(aside)[0] != holder:
            try:
                os.link(aside, self.path)  # no-clobber
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    @staticmethod
    def _who(holder):
        if not holder:
            return "a run that is starting"
        return f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # a hiccup of the file system; the next beat tries again
                pass
