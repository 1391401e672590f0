"""Scale (issue 28 item 7, issue 25 item 6): what makes explain and report linear keeps every fact,
and a report past Altair's 5,000-row limit renders. The timings and the memory against the
goals are the bench's (`python -m netobs.bench --scale-only`), not timed assertions here."""
from __future__ import annotations

import re

import pytest
from conftest import FIXTURES, GOLDEN

from netobs.analysis import accounting as acc
from netobs.analysis import report
from netobs.analysis.load import Results, load_results
from netobs.analysis.noise import describe
from netobs.analysis.questions import answer_all
from netobs.bench import __main__ as bench
from netobs.bench import scale
from netobs.files import dumps

ALTAIR_MAX_ROWS = 5000   # altair's default data transformer refuses data sets larger than this


def _facts(path) -> str:
    r = load_results(path)
    return dumps({"answers": [a.to_dict() for a in answer_all(r)], "noise": describe(r).to_dict()})


@pytest.mark.parametrize("path", [FIXTURES / "profiled-sweep", GOLDEN / "sweep-netns", GOLDEN / "synth-anomaly",
                                  GOLDEN / "import-study"], ids=lambda p: p.name)
def test_memoisation_changes_no_fact(path, monkeypatch):
    """Every answer's facts (explain --json) with the memoised figures equal, byte for byte, those
    computed afresh at every ask."""
    memoised = _facts(path)
    monkeypatch.setattr(Results, "memo", lambda self, key, compute: compute())
    monkeypatch.setattr(acc, "_once", lambda obj, key, compute: compute())
    monkeypatch.setattr(acc, "config_means",
                        lambda runs, series: series.groupby([runs[k] for k in acc.KEY]).mean().to_dict())
    assert _facts(path) == memoised


def test_memos_do_not_leak_between_frames():
    """A memo belongs to one frame: a narrower one (one strategy's rows) gets its own figures."""
    r = load_results(FIXTURES / "profiled-sweep")
    part = r.runs[r.runs.implementation == "two_copy"].reset_index(drop=True)
    whole = acc.thread_share(r.runs, "client", "utilisation")
    assert acc.thread_share(r.runs, "client", "utilisation") is whole      # the same Series, once
    mine = acc.thread_share(part, "client", "utilisation")
    assert len(mine) == len(part) < len(whole)
    point = [tuple(part[["implementation", "msg_size", "threads"]].iloc[0])]
    assert acc.mean_over(part, mine, point) == acc.mean_over(r.runs, whole, point)
    assert acc.measured_runs(part, "client") and not acc.measured_runs(part.iloc[:0], "client")


def test_the_t_quantile_is_scipy_stats():
    from scipy import stats as sps

    from netobs.analysis.stats import _t_quantile

    assert all(_t_quantile(df) == float(sps.t.ppf(0.975, df)) for df in range(1, 400))


def test_columnar_stores_runs_losslessly():
    rows = [{"p": i // 50, "z": 0, "k": (i // 7) % 2, "x": i * 0.1, "s": "ab"[i // 100], "b": i < 60}
            for i in range(200)] + [{"x": 1.5}]
    data = report.columnar(rows)
    assert {"p", "z", "s", "b"} <= set(data["r"]) and "x" in data["c"]     # long runs run by run, the rest as they are
    assert report.rows_of(data) == rows
    assert report.rows_of(report.columnar([{"a": 1, "s": "x"}, {"s": "x"}, {"a": 2.5, "s": "y"}, {}])) == \
        [{"a": 1, "s": "x"}, {"s": "x"}, {"a": 2.5, "s": "y"}, {}]


def test_a_report_past_altairs_row_limit_renders(tmp_path):
    """2,000 points: a chart's data set of more than 5,000 rows (every point, every metric) is
    drawn, not refused (MaxRowsError); the tables show TABLE_ROWS rows and say where the rest is."""
    store = scale.write_store(tmp_path / "big", 2000)
    out = report.write_report(store, tmp_path / "big.html")
    page = out.read_text(encoding="utf-8")
    assert "chart error" not in page
    specs = report.specs_in(page)
    assert max(len(rows) for _, spec in specs for rows in (spec.get("datasets") or {}).values()) > ALTAIR_MAX_ROWS
    runs = len(load_results(store).runs)
    assert runs > report.TABLE_ROWS
    assert f"{runs - report.TABLE_ROWS} more rows not shown (every row: runs.csv)" in page
    assert len(re.findall(r"<tr>", page)) < 20 * report.TABLE_ROWS


def test_the_bench_scale_section_refuses_a_study_without_runs(tmp_path, capsys):
    assert bench.main(["--scale-only", "--scale-study", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netobs: error: --scale-study")


def test_the_bench_scale_table_says_each_goal():
    rows = [{"command": "explain", "points": 10080, "runs_csv_bytes": 7 * 2 ** 20, "wall_s": 6.0, "cpu_s": 5.5,
             "peak_rss_bytes": 220 * 2 ** 20, "baseline_rss_bytes": 150 * 2 ** 20, "memory_growth_x_file": 10.0,
             "goal_s": 10.08, "error": None, "within_time_goal": True, "within_memory_goal": False,
             "load_1m": 2.5, "html_bytes": None},
            {"command": "report", "study": True, "points": 48, "wall_s": 3.1, "cpu_s": 4.0, "html_bytes": 2_400_000,
             "load_1m": 1.0, "goal_s": scale.GOAL_REPORT_S, "goal_bytes": scale.GOAL_REPORT_BYTES,
             "within_time_goal": False, "within_size_goal": True, "error": None, "swept": False}]
    text = bench.format_scale(rows)
    assert "time within goal, memory OVER goal" in text
    assert "48-point traced and profiled study: 3.10 s wall, 4.00 s CPU, page 2.40 MB" in text
    assert "time OVER goal, size within goal" in text
