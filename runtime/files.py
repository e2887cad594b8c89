"""Files in and out: arrays read with one-line errors, and writes that never leave half a file.

Every file opmlc writes goes through :func:`atomic_write`: the bytes go to a temporary
file in the target's folder, are flushed to disk, and the temporary file is renamed over
the target, so a failure (a full disk, an interrupt) leaves the previous file intact and
no partial one (DESIGN.md, "Bad input and files"). Arrays come in as ``.npy`` (one array)
or ``.npz`` (arrays by name); anything else is refused with a message that names the
file and says what to do.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
NPZ_MAGIC = b"PK"


class ArrayFileError(ValueError):
    """An array file that cannot be read; the message is one line naming the file."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _head(path: str | Path, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError as e:
        raise ArrayFileError(f"{what}: cannot read {path}: {e.strerror or e}") from None


def read_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """The array in ``.npy`` file ``path`` (no pickles). ``what`` names the file's role in
    messages, e.g. ``"--input x"``."""
    head = _head(path, what)
    if head[:2] == NPZ_MAGIC:
        raise ArrayFileError(f"{what}: {path} is an .npz archive, not a .npy array; pass "
                             f"NAME=FILE.npy per array, or the .npz alone to take every "
                             "array from the archive by name")
    if head != NPY_MAGIC:
        raise ArrayFileError(f"{what}: {path} is not a .npy file (save it with numpy.save)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ArrayFileError(f"{what}: {path}: unreadable .npy file: {_one_line(e)}") from None


def read_npz(path: str | Path, what: str = "arrays") -> dict[str, np.ndarray]:
    """The arrays of ``.npz`` archive ``path`` by name (no pickles)."""
    head = _head(path, what)
    if head[:2] != NPZ_MAGIC:
        hint = " (it is a single .npy array)" if head == NPY_MAGIC else ""
        raise ArrayFileError(f"{what}: {path} is not an .npz archive{hint}; save arrays by "
                             "name with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ArrayFileError(f"{what}: cannot read the .npz archive {path}: "
                             f"{_one_line(e)}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary file object) to
    ``path`` through a temporary file in the same folder, flushed and renamed into place.
    On any failure the temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # what open() would have given the file
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


__all__ = ["ArrayFileError", "atomic_write", "read_npy", "read_npz"]
