"""Writing output files so that a failure leaves nothing half-written.

Everything is written into a temporary folder inside the target directory and moved into place with
`os.replace` only once complete; on any error the temporary folder is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputPathError


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


@contextlib.contextmanager
def staged_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield temporary paths to write instead of `paths`; on success move them into place together.

    A failure of the file system (no permission, read-only, disk full) becomes an OutputPathError naming
    the target; whatever fails, the temporary folders are removed and no target is half-written.
    """
    finals = [Path(p) for p in paths]
    for final in finals:
        check_writable_dir(final)
    staging_dirs: dict[Path, Path] = {}
    moved: list[Path] = []
    try:
        for final in finals:
            if final.parent not in staging_dirs:
                staging_dirs[final.parent] = Path(tempfile.mkdtemp(prefix=".nascompile-", dir=final.parent))
        staged = [staging_dirs[final.parent] / final.name for final in finals]
        yield staged
        for temp, final in zip(staged, finals):
            if temp.exists():
                os.replace(temp, final)
                moved.append(final)
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
    """Write a text file atomically."""
    with staged_outputs(path) as (temp,):
        temp.write_text(text)
