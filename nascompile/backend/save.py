"""Writing ONNX files: atomically, checked, with external data past the protobuf limit."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import onnx

from ..errors import OutputPathError
from ..files import final_path, is_stream, staged_outputs
from .onnx import initializer_bytes

#: Protobuf messages cannot exceed 2 GiB; weights past this size go to a side file.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def save_onnx(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    extra_files: Mapping[str | os.PathLike, bytes] | None = None,
    before_commit: Callable[[Path], None] | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> list[Path]:
    """Write `model` to `path` (plus `path.data` when its weights exceed the threshold) and `extra_files`.

    The staged model is checked with `onnx.checker.check_model(full_check=True)` and passed to
    `before_commit` (validation) before anything is moved into place; if either raises, no file is
    left behind. Returns the files written.
    """
    path = final_path(path)  # a symlink's target: the external data file goes beside the real model
    external = initializer_bytes(model) > external_data_threshold
    data_path = path.with_name(path.name + ".data")
    extras = {Path(p): content for p, content in (extra_files or {}).items()}
    if external and is_stream(path):
        raise OutputPathError(f"cannot write {str(path)!r}: the model's weights ({initializer_bytes(model):,} bytes) "
                              "need an external data file beside it, which a stream cannot have; write to a file")
    finals = [path] + ([data_path] if external else []) + list(extras)
    with staged_outputs(*finals) as staged:
        if external:
            onnx.save_model(model, staged[0], save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_path.name, size_threshold=1024)
        else:
            staged[0].write_bytes(model.SerializeToString(deterministic=True))
        for temp, content in zip(staged[len(finals) - len(extras):], extras.values()):
            temp.write_bytes(content)
        onnx.checker.check_model(str(staged[0]), full_check=True)
        if before_commit is not None:
            before_commit(staged[0])
    return finals
