"""Writing output files so that each one is either whole or absent, and a failed write is one line.

Owner of: writing every file the scripts produce (checkpoints, the CSV log, the summary, the loss curve, PNGs):
the content is made in memory first, written to a temporary file in the target's folder and renamed over the
target, so a kill or a full disk never leaves half a file where an earlier one was; on any OSError (no space
left, permission denied, read-only file system) the temporary file is removed and WriteError names the path and
the reason; `keeping` adds what the user still has.
"""
import contextlib
import os
from pathlib import Path

from runtime import UserError


class WriteError(UserError):
    """An output file could not be written; the earlier file of that name, if any, is unchanged."""


def write_bytes(path, payload):
    """Write `payload` (bytes or a buffer) to `path` atomically; WriteError if it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteError(f"could not write {path}: {err.strerror or err}") from None


def write_text(path, text):
    write_bytes(path, text.encode())


@contextlib.contextmanager
def keeping(what_is_kept):
    """Add what the user still has (e.g. "the checkpoint of epoch 3 is kept") to a WriteError raised inside."""
    try:
        yield
    except WriteError as err:
        raise WriteError(f"{err}; {what_is_kept}") from None
