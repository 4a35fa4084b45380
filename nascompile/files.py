"""Writing output files so that a failure leaves nothing half-written.

Everything is written into a temporary folder inside the target's directory and moved into place with
`os.replace` only once complete; on any error (or SIGTERM, see `signals.py`) the temporary folder is
removed. What stands at the output path is respected:

- a symlink is followed: its target is replaced atomically, the link stays;
- an existing file keeps its permission bits (and its owner and group, where the process may set them);
  it is replaced, so other hard links to it keep the old content;
- a character device, FIFO or socket (`/dev/null`, `/dev/stdout`, a named pipe) is written through, once
  everything is complete and checked, never replaced by a regular file;
- `-` is stdout.

A new file gets the mode a plain `open()` would give it (0666 less the umask), whichever file it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputPathError

STDOUT = "-"


def is_stream(path: str | os.PathLike) -> bool:
    """`-`, or an existing character device, FIFO or socket: written through, not replaced."""
    if str(path) == STDOUT:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def final_path(path: str | os.PathLike) -> Path:
    """Where writing `path` really goes: its symlinks followed. A name ending in a separator is refused."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) and text != STDOUT:
        raise OutputPathError(f"cannot write {text!r}: it names a directory (it ends with a separator); give a "
                              f"file name, e.g. {text + 'model.onnx'!r}")
    if is_stream(text):  # /dev/stdout links to a pipe that has no path: open() follows it
        return Path(text)
    return Path(os.path.realpath(text)) if os.path.islink(text) else Path(text)


def check_writable_dir(path: Path) -> None:
    """Raise OutputPathError unless `path`'s directory exists and is writable."""
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: {str(directory)!r} is a file, not a directory; "
                              "choose an output path inside a directory")
    if not directory.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist; create it "
                              "first (mkdir -p) or choose another output path")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {str(path)!r}: directory {str(directory)!r} is not writable; choose "
                              "a directory you can write to")
    if path.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: it is a directory; give a file name, e.g. "
                              f"{str(path / 'model.onnx')!r}")


def _check_target(path: Path) -> None:
    if str(path) == STDOUT:
        return
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"cannot write {str(path)!r}: no permission to write to it")
        return
    check_writable_dir(path)


def _new_file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _take_over_metadata(temp: Path, final: Path) -> None:
    """Give the staged file the mode (and owner) of the file it replaces, or a new file's mode."""
    try:
        old = os.stat(final)
    except FileNotFoundError:
        os.chmod(temp, _new_file_mode())
        return
    os.chmod(temp, stat.S_IMODE(old.st_mode))
    if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):
            os.chown(temp, old.st_uid, old.st_gid)


_results_stdout: list = []  # where results go while sys.stdout is lent to the SPEC's prints


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send print() to stderr for the duration; results written to `-` still reach the real stdout."""
    _results_stdout.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _results_stdout.pop()


def _write_through(temp: Path, final: Path) -> None:
    with open(temp, "rb") as source:
        if str(final) == STDOUT:
            stdout = _results_stdout[0] if _results_stdout else sys.stdout
            stdout.flush()
            shutil.copyfileobj(source, stdout.buffer)
            stdout.buffer.flush()
        else:
            with open(final, "wb") as sink:
                shutil.copyfileobj(source, sink)


@contextlib.contextmanager
def staged_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield temporary paths to write instead of `paths`; on success move them into place together.

    A failure of the file system (no permission, read-only, disk full) becomes an OutputPathError naming
    the target; whatever fails, the temporary folders are removed and no target is half-written. Streams
    (stdout, devices, FIFOs) are written last, after every file has been moved into place.
    """
    finals = [final_path(p) for p in paths]
    for final in finals:
        _check_target(final)
    if len({os.path.abspath(f) for f in finals}) < len(finals):
        raise OutputPathError("two outputs name the same file (" + ", ".join(repr(os.fspath(p)) for p in paths) +
                              "); give each its own path")
    staging_dirs: dict[Path, Path] = {}
    moved: list[Path] = []
    try:
        staged = []
        for final in finals:  # the staged files keep their names: a model finds its external data by name
            directory = Path(tempfile.gettempdir()) if is_stream(final) else final.parent
            if directory not in staging_dirs:
                staging_dirs[directory] = Path(tempfile.mkdtemp(prefix=".nascompile-", dir=directory))
            staged.append(staging_dirs[directory] / ("stdout" if str(final) == STDOUT else final.name))
        yield staged
        for temp, final in zip(staged, finals):
            if temp.exists() and not is_stream(final):
                _take_over_metadata(temp, final)
                os.replace(temp, final)
                moved.append(final)
        for temp, final in zip(staged, finals):
            if temp.exists() and is_stream(final):
                _write_through(temp, final)
    except OSError as exc:
        for final in moved:  # a later move failed: do not leave a model without its companion files
            final.unlink(missing_ok=True)
        targets = ", ".join(repr(str(f)) for f in finals)
        reason = exc.strerror or str(exc)
        raise OutputPathError(f"cannot write {targets}: {reason} ({type(exc).__name__}); choose another output "
                              "path, or make its directory writable and give it free space") from None
    finally:
        for directory in staging_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (or through to a stream: `-`, a device, a FIFO)."""
    with staged_outputs(path) as (temp,):
        temp.write_text(text)
