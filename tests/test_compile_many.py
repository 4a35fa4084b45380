"""`compile_many`: finite spaces, the content-addressed folder, the manifest, resume after a kill, failures."""

from __future__ import annotations

import json
import os

import pytest

from nascompile.batch import MANIFEST, ModelSource, compile_many, load_archs_file, read_records
from nascompile.errors import OutputPathError
from nascompile.space import enumerate_space, nb201_isomorphism_key, nb201_nodes, space_size

from conftest import EXAMPLES

SPEC = str(EXAMPLES / "nb201_cell.py")
ARCHS = [
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
]


@pytest.fixture(scope="module")
def lifted():
    return ModelSource(SPEC).lift()


def test_nas_bench_201_space_has_15625_cells_in_6466_classes(lifted):
    assert space_size(lifted.graph) == 15625
    forms = {nb201_isomorphism_key(nb201_nodes(d, lifted.graph, lifted.search_space))
             for d in enumerate_space(lifted.graph)}
    assert len(forms) == 6466


def test_spaces_that_select_inputs_are_not_enumerated():
    from nascompile.errors import ChoiceError

    darts = ModelSource(str(EXAMPLES / "darts_cnn.py"), {"n_layers": 3}).lift()
    with pytest.raises(ChoiceError, match="selects n_chosen=2 inputs"):
        space_size(darts.graph)


def test_manifest_files_and_resume_after_a_kill(tmp_path):
    out = tmp_path / "out"
    archs = ARCHS + ["|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_9x9~2|"]
    summary = compile_many(SPEC, out, archs, validate_sample=1.0)
    assert (summary.ok, summary.failed, summary.validated) == (3, 1, 3)
    records = read_records(out)
    ok = [r for r in records if r["status"] == "ok"]
    assert sorted(r["key"] for r in ok) == sorted(ARCHS)
    for r in ok:
        assert r["path"] == f"{r['sha256']}.onnx" and (out / r["path"]).is_file()
        assert r["validation"]["passed"] and r["timings"]["apply-arch"] >= 0
    bad = next(r for r in records if r["status"] == "failed")
    assert bad["error"]["exit_code"] == 6 and "did you mean" in bad["error"]["message"]
    with pytest.raises(OutputPathError, match="pass --resume"):
        compile_many(SPEC, out, archs)

    # A kill: the last record cut mid-line, its file gone, a staging folder left behind.
    lines = (out / MANIFEST).read_bytes().splitlines(keepends=True)
    cut = max(i for i, line in enumerate(lines) if json.loads(line)["status"] == "ok")
    last_ok = json.loads(lines[cut])
    (out / last_ok["path"]).unlink()
    (out / MANIFEST).write_bytes(b"".join(lines[:cut]) + lines[cut][:20])
    (out / ".nascompile-stale").mkdir()
    (out / ".nascompile-stale" / last_ok["path"]).write_bytes(b"half")
    summary = compile_many(SPEC, out, archs, resume=True, validate_sample=1.0)
    assert summary.skipped == cut and (summary.ok, summary.failed) == (3, 1)
    again = read_records(out)
    assert len(again) == 4 and sorted(r["key"] for r in again) == sorted(r["key"] for r in records)
    assert {r["sha256"] for r in again} == {r["sha256"] for r in records}
    assert (out / last_ok["path"]).is_file() and not (out / ".nascompile-stale").exists()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".onnx") == sorted(r["path"] for r in ok)


def test_all_with_isomorphism_dedup_in_two_processes(tmp_path, monkeypatch):
    """A small NB201 space (skip_connect or none on each edge): one cell per class, in 2 processes or 1."""
    import nascompile.space as space

    real = space._layer_options
    monkeypatch.setattr(space, "_layer_options", lambda graph: {k: [v[0], v[-1]] for k, v in real(graph).items()})
    lifted = ModelSource(SPEC).lift()
    assert space.space_size(lifted.graph) == 2 ** 6
    forms = {space.nb201_isomorphism_key(space.nb201_nodes(d, lifted.graph, lifted.search_space))
             for d in space.enumerate_space(lifted.graph)}
    two = compile_many(SPEC, tmp_path / "two", all_archs=True, jobs=2)
    assert two.ok == len(forms) and two.isomorphic == 2 ** 6 - len(forms)
    one = compile_many(SPEC, tmp_path / "one", all_archs=True)
    hashes = lambda d: sorted((r["key"], r["sha256"]) for r in read_records(d))  # noqa: E731
    assert hashes(tmp_path / "one") == hashes(tmp_path / "two")
    for name in os.listdir(tmp_path / "one"):
        if name.endswith(".onnx"):
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_archs_file_lines(tmp_path):
    path = tmp_path / "archs.jsonl"
    path.write_text(f"# comment\n{ARCHS[0]}\n{json.dumps(ARCHS[1])}\n\n{json.dumps({'edge_1_0': 'skip_connect'})}\n")
    assert load_archs_file(path) == [ARCHS[0], ARCHS[1], {"edge_1_0": "skip_connect"}]
