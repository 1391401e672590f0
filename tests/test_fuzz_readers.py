"""Property-based damage of what the readers read (issue 28): runs.csv, manifest.json and the
study CSVs `netobs import` takes, damaged the ways files are (wrong types, truncation, NaN and
inf, huge and negative values, unknown strategies, duplicated headers, a BOM, CRLF, thousands
separators). `load`, `explain`, `report` and `compare` must give a result or a one-line error,
never a traceback. No root. The unit tier draws a fraction of the examples (derandomized: the
same ones each run), `make test` all of them (conftest.deep)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from conftest import deep  # noqa: E402
from netobs.analysis.load import load_results  # noqa: E402
from netobs.cli import main  # noqa: E402
from netobs.errors import NetobsError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402

NASTY = ["", "nan", "NaN", "inf", "-inf", "1e300", "-1e300", "-5", "0", "1.7", "-0", "1,234.5", "x", "None",
         "9223372036854775808", "1e-320", "../../x", "/etc/passwd", "two_copy", "zero_copy", "a;b", "\ufeff",
         "\"", "'", "0x10", "1_000", " 12 ", "true", "ok", "failed", "<not supported>"]
SETTINGS = dict(deadline=None, derandomize=True, report_multiple_bugs=False,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
value = st.one_of(st.sampled_from(NASTY), st.text(max_size=12),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(min_value=-2**70, max_value=2**70).map(str))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return synth.write_results(tmp_path_factory.mktemp("good") / "r", repeats=2, sizes=(1024, 65536),
                               threads=(1, 2), failed=[("one_copy", 1024, 2, 1, "worker: refused")])


@st.composite
def damaged_csv(draw, text: str) -> str:
    """`text` (a CSV) damaged a few times over."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["cell", "cell", "cell", "truncate", "dup_header", "dup_column", "bom", "crlf",
                                    "drop_line", "dup_line", "extra_cell", "drop_column"]))
        if how == "cell" and len(lines) > 1:
            i = draw(st.integers(1, len(lines) - 1))
            cells = lines[i].rstrip("\r\n").split(",")
            j = draw(st.integers(0, len(cells) - 1))
            cells[j] = draw(value)
            lines[i] = ",".join(cells) + "\n"
        elif how == "truncate":
            whole = "".join(lines)
            cut = draw(st.integers(0, len(whole)))
            lines = whole[:cut].splitlines(keepends=True)
        elif how == "dup_header" and lines:
            lines.insert(draw(st.integers(1, len(lines))), lines[0])
        elif how == "dup_column" and lines:
            cells = lines[0].rstrip("\r\n").split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(cells))
            lines[0] = ",".join(cells) + "\n"
        elif how == "bom" and lines:
            lines[0] = "\ufeff" + lines[0]
        elif how == "crlf":
            lines = [line.replace("\n", "\r\n") if not line.endswith("\r\n") else line for line in lines]
        elif how == "drop_line" and len(lines) > 1:
            del lines[draw(st.integers(1, len(lines) - 1))]
        elif how == "dup_line" and len(lines) > 1:
            lines.append(lines[draw(st.integers(1, len(lines) - 1))])
        elif how == "extra_cell" and len(lines) > 1:
            i = draw(st.integers(1, len(lines) - 1))
            lines[i] = lines[i].rstrip("\r\n") + "," + draw(value) + "\n"
        elif how == "drop_column" and lines:
            j = draw(st.integers(0, lines[0].count(",")))
            lines = [",".join(c for k, c in enumerate(line.rstrip("\r\n").split(",")) if k != j) + "\n"
                     for line in lines]
    return "".join(lines)


json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.text(max_size=8),
                                    st.floats(allow_nan=False, allow_infinity=False)),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=6)


@st.composite
def damaged_manifest(draw, text: str) -> str:
    manifest = json.loads(text)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["value", "value", "matrix", "drop", "truncate"]))
        if how == "value":
            manifest[draw(st.sampled_from(sorted(manifest)))] = draw(json_value)
        elif how == "matrix" and isinstance(manifest.get("matrix"), dict) and manifest["matrix"]:
            manifest["matrix"][draw(st.sampled_from(sorted(manifest["matrix"])))] = draw(json_value)
        elif how == "drop" and manifest:
            manifest.pop(draw(st.sampled_from(sorted(manifest))))
    out = json.dumps(manifest)
    if draw(st.booleans()) and draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return out


def _copy(good: Path, tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    shutil.rmtree(d, ignore_errors=True)
    return Path(shutil.copytree(good, d))


def _clean(args: list[str], capsys) -> None:
    """The command gives a result or a one-line error (a traceback fails the test)."""
    code = main(args)
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    if code not in (0, None):
        errors = [line for line in err.splitlines() if line.startswith("netobs: error: ")]
        assert code in (1, 2) and len(errors) == 1, err


def _load(d: Path) -> None:
    try:
        load_results(d)
    except NetobsError as exc:
        assert "\n" not in exc.message


@settings(max_examples=deep(150, 25), **SETTINGS)
@given(data=st.data())
def test_load_of_a_damaged_runs_csv(good, tmp_path, data):
    d = _copy(good, tmp_path, "d")
    (d / "runs.csv").write_text(data.draw(damaged_csv((good / "runs.csv").read_text())), encoding="utf-8")
    _load(d)


@settings(max_examples=deep(80, 15), **SETTINGS)
@given(data=st.data())
def test_load_of_a_damaged_manifest(good, tmp_path, data):
    d = _copy(good, tmp_path, "d")
    (d / "manifest.json").write_text(data.draw(damaged_manifest((good / "manifest.json").read_text())))
    _load(d)


@settings(max_examples=deep(25, 4), **SETTINGS)
@given(data=st.data())
def test_explain_and_compare_of_damaged_results(good, tmp_path, capsys, data):
    d = _copy(good, tmp_path, "d")
    (d / "runs.csv").write_text(data.draw(damaged_csv((good / "runs.csv").read_text())), encoding="utf-8")
    if data.draw(st.booleans()):
        (d / "manifest.json").write_text(data.draw(damaged_manifest((good / "manifest.json").read_text())))
    _clean(["explain", str(d), "--json"], capsys)
    _clean(["compare", str(good), str(d)], capsys)


@settings(max_examples=deep(8, 2), **SETTINGS)
@given(data=st.data())
def test_report_of_damaged_results(good, tmp_path, capsys, data):
    d = _copy(good, tmp_path, "d")
    (d / "runs.csv").write_text(data.draw(damaged_csv((good / "runs.csv").read_text())), encoding="utf-8")
    _clean(["report", str(d), "-o", str(tmp_path / "r.html"), "--force"], capsys)


@settings(max_examples=deep(40, 8), **SETTINGS)
@given(data=st.data())
def test_import_of_a_damaged_study_csv(tmp_path, capsys, data):
    src = synth.write_study_csv(tmp_path / "study.csv", synth.study_rows(repeats=data.draw(st.sampled_from([None, 2]))))
    src.write_text(data.draw(damaged_csv(src.read_text())), encoding="utf-8")
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    _clean(["import", str(src), "--duration", "10", "-o", str(out)], capsys)
    if (out / "manifest.json").exists():
        _clean(["explain", str(out)], capsys)
