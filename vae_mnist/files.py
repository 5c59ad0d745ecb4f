"""Writing files so that a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix, because Keras and matplotlib choose the file
    format from it. The rename is atomic on POSIX file systems, so readers see either the old
    file or the complete new one.
    """
    path = Path(path)
    if path.is_dir():
        # The rename would fail only after the writer's work, naming the temporary file.
        raise IsADirectoryError(f"{path} is a folder, where a file is written: move it")
    path.parent.mkdir(parents=True, exist_ok=True)  # Its error names what is in the way.
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=TEMPORARY_PREFIX, suffix=path.name, dir=path.parent
        )
    except OSError as error:
        # Named as the file to be written: the temporary name means nothing to the reader.
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    os.close(handle)
    temporary = Path(temporary_name)
    # Some writers (Keras) refuse to overwrite without asking, so hand them a free name.
    temporary.unlink()
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"{path} was not written (the writer chose another name)")
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        # Some writers add a suffix of their own to a name without the one they expect
        # (matplotlib, numpy.save); the random part of the name makes these files ours alone.
        for leftover in (temporary, *temporary.parent.glob(glob.escape(temporary.name) + ".*")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically, as UTF-8."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file, with or without the byte-order mark that some editors write.

    Users edit a run's settings, preset files and histories by hand; a spreadsheet or a Windows
    editor saves them with the mark, which the JSON and CSV readers would take for text.
    """
    return Path(path).read_text(encoding="utf-8-sig")


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files that a killed process left in `folder`."""
    folder = Path(folder)
    if folder.is_dir():
        for leftover in folder.glob(TEMPORARY_PREFIX + "*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


@contextlib.contextmanager
def removed_if_left_empty(folder: str | Path) -> Iterator[None]:
    """Remove `folder`, and the parents made for it, if the block fails and leaves them empty.

    A command that creates its folder and then fails (out of memory while building the model,
    an interrupt during the data load) should leave the disk as it found it. Only folders that
    did not exist before the block are removed, and only while empty, so nothing written is lost.
    """
    folder = Path(folder)
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    try:
        yield
    except BaseException:
        for made in missing:
            remove_stale_temporaries(made)
            try:
                made.rmdir()
            except OSError:  # Not empty (or already gone): keep it and its parents.
                break
        raise


def check_writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and make sure files can be written in it."""
    folder = Path(folder)
    _nearest_existing_folder(folder)
    _try_a_file(folder, folder, create=True)
    return folder


def _try_a_file(tried: Path, folder: Path, create: bool = False) -> None:
    """Make a file in the folder `tried` (created first where `create`) and remove it, or a
    `PermissionError` naming `folder`, the one a command writes to (`tried` or inside it).

    Tried, since the permission bits do not tell for every file system (root may write
    anywhere by them, and /proc takes no new file).
    """
    try:
        if create:
            tried.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=TEMPORARY_PREFIX, dir=tried):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise PermissionError(f"cannot write to the folder {folder}: {reason}") from None


def check_can_create_folder(folder: str | Path) -> None:
    """Make sure `folder` can be written, or created, without creating it.

    Commands check this before a long data load and create the folder only once the input
    is known to be good, so a bad input leaves no empty folder behind.
    """
    folder = Path(folder)
    _try_a_file(_nearest_existing_folder(folder), folder)


def _nearest_existing_folder(folder: Path) -> Path:
    """`folder` or its nearest ancestor that exists, or a `PermissionError` where that is a
    file, naming both (an OS error would say only "File exists" or "Not a directory")."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise PermissionError(f"cannot write to the folder {folder}: {existing} is a file")
    return existing
