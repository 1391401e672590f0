"""`netobs compare` and `report --baseline` on synthetic pairs with planted changes (no root)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402
from conftest import fixture_results  # noqa: E402

from netobs.analysis import compare, report  # noqa: E402
from netobs.analysis.compare_text import render  # noqa: E402
from netobs.analysis.load import load_results  # noqa: E402
from netobs.analysis.questions import answer_all  # noqa: E402
from netobs.cli import main as cli_main  # noqa: E402
from netobs.errors import UsageError  # noqa: E402
from netobs.importer import import_study_csv  # noqa: E402

SLOW = ("zero_copy", 1024, 1)   # 20% slower in NEW; at that point it stays last of the three


def pair(tmp_path, base=None, new=None):
    b, n = synth.write_pair(tmp_path, base, new)
    return load_results(b), load_results(n)


def flagged(c) -> set[tuple]:
    p = c.points[c.points["verdict"].isin(("faster", "slower"))]
    return set(zip(p["implementation"], p["msg_size"], p["threads"]))


def verdicts(c, metric="throughput_gbps") -> dict:
    p = c.points[c.points["metric"] == metric]
    return {(r.implementation, r.msg_size, r.threads): r for r in p.itertuples()}


def test_a_planted_slowdown_is_flagged_and_nothing_else(tmp_path):
    c = compare.compare(*pair(tmp_path, new={"gbps_factor": {SLOW: 0.8}}))
    assert flagged(c) == {SLOW}
    row = verdicts(c)[SLOW]
    assert row.verdict == "slower" and row.significant and row.p_value < 0.01
    assert row.change_pct == pytest.approx(-20, abs=3) and row.n_base == row.n_new == 3
    # latency follows throughput in the model (a cost, lower is better): slower there too
    assert verdicts(c, "latency_us")[SLOW].verdict == "slower"
    assert c.counts["throughput_gbps"] == {"faster": 0, "slower": 1, "same": 47, "untested": 0}
    assert c.largest[0]["implementation"] == "zero_copy" and c.ranking_changes == []
    assert c.geomean_ratio["throughput_gbps"]["zero_copy"] < 0.99 < c.geomean_ratio["throughput_gbps"]["two_copy"]
    assert compare.regressions(c, 10) and not compare.regressions(c, 25)


def test_noise_only_flags_nothing(tmp_path):
    c = compare.compare(*pair(tmp_path))
    assert flagged(c) == set() and c.ranking_changes == [] and c.manifest_differences == []
    assert set(c.points["verdict"]) == {"same"}
    assert c.compared_metrics == list(compare.DEFAULT_METRICS) and c.grid["same"]


def test_a_faster_cost_is_faster(tmp_path):
    """Direction: a lower CPU time per GB is better."""
    base, new = pair(tmp_path)
    new.runs.loc[new.runs["implementation"] == "one_copy", "cpu_s_per_gb"] *= 0.7
    c = compare.compare(base, new)
    cpu = c.points[(c.points["metric"] == "cpu_s_per_gb") & (c.points["implementation"] == "one_copy")]
    assert set(cpu["verdict"]) == {"faster"} and c.counts["cpu_s_per_gb"]["faster"] == 16


def test_a_change_within_the_threshold_is_the_same(tmp_path):
    quiet = {"noise": 0.002}   # 0.2% noise: a 3% change is certain, and below a 5% threshold
    base, new = pair(tmp_path, base=quiet, new={**quiet, "gbps_factor": {SLOW: 0.97}})
    row = verdicts(compare.compare(base, new, threshold_pct=5))[SLOW]
    assert row.significant and row.verdict == "same"
    assert verdicts(compare.compare(base, new, threshold_pct=1))[SLOW].verdict == "slower"


def test_a_ranking_swap_is_reported_with_its_point(tmp_path):
    # one_copy leads at 16 KiB (x1.15 of two_copy); x0.8 puts it behind two_copy, at 4 threads only
    c = compare.compare(*pair(tmp_path, new={"gbps_factor": {("one_copy", 16384, 4): 0.8}}))
    assert [(r["msg_size"], r["threads"]) for r in c.ranking_changes] == [(16384, 4)]
    r = c.ranking_changes[0]
    assert r["base_order"][:2] == ["one_copy", "two_copy"] and r["new_order"][:2] == ["two_copy", "one_copy"]
    assert r["swapped"] == [{"was_ahead": "one_copy", "now_ahead": "two_copy", "p_base": pytest.approx(r["swapped"][0]["p_base"]),
                             "p_new": pytest.approx(r["swapped"][0]["p_new"]), "significant": True}]
    text = "\n".join(b.text for b in render(c))
    assert "16 KiB x4: one_copy > two_copy > zero_copy -> two_copy > one_copy > zero_copy" in text


def test_one_sysctl_that_differs_is_listed_first(tmp_path):
    base, new = synth.write_pair(tmp_path)
    sysctl = {"net.core.wmem_max": {"scope": "global", "before": 212992, "set": 16777216}}
    synth.edit_manifest(base, lambda m: m["topology"].update(sysctls=sysctl))
    synth.edit_manifest(new, lambda m: m["topology"].update(
        sysctls={"net.core.wmem_max": {**sysctl["net.core.wmem_max"], "set": 4194304}}))
    c = compare.compare(load_results(base), load_results(new))
    assert c.manifest_differences == [{"what": "sysctl net.core.wmem_max set", "base": 16777216, "new": 4194304}]
    blocks = render(c)
    first_table = next(b for b in blocks if b.kind == "table")
    assert first_table.rows == [["sysctl net.core.wmem_max set", "16777216", "4194304"]]


def test_overlapping_grids_compare_the_overlap_and_list_the_rest(tmp_path):
    c = compare.compare(*pair(tmp_path, base={"sizes": (1024, 4096)}, new={"sizes": (4096, 16384)}))
    assert c.grid["compared"] == 12 and not c.grid["same"]
    assert {p["msg_size"] for p in c.grid["only_base"]} == {1024} and len(c.grid["only_base"]) == 12
    assert {p["msg_size"] for p in c.grid["only_new"]} == {16384} and len(c.grid["only_new"]) == 12
    assert set(c.points["msg_size"]) == {4096}
    assert {"what": "matrix sizes", "base": [1024, 4096], "new": [4096, 16384]} in c.manifest_differences
    assert any("The grids differ" in b.text for b in render(c))


def test_disjoint_grids_compare_nothing_and_say_so(tmp_path):
    c = compare.compare(*pair(tmp_path, base={"sizes": (1024,)}, new={"sizes": (65536,)}))
    assert c.grid["compared"] == 0 and c.points.empty and c.ranking_changes == [] and c.largest == []
    assert all(sum(n.values()) == 0 for n in c.counts.values())
    json.dumps(c.to_dict(), allow_nan=False)


def test_one_repeat_inputs_are_untested_without_p_values(tmp_path):
    c = compare.compare(*pair(tmp_path, base={"repeats": 1}, new={"repeats": 1, "gbps_factor": {SLOW: 0.8}}))
    assert set(c.points["verdict"]) == {"untested"} and c.points["p_value"].isna().all()
    assert verdicts(c)[SLOW].change_pct == pytest.approx(-20, abs=3)
    facts = c.to_dict()
    assert all(p["p_value"] is None and p["significant"] is None for p in facts["points"])
    assert compare.regressions(c, 5) == []
    table = next(b for b in render(c) if b.kind == "table" and b.headers[0] == "strategy")
    assert {row[6] for row in table.rows} == {"—"} and {row[7] for row in table.rows} == {"untested"}


def test_imported_results_compare_untested_and_name_the_unmeasured(tmp_path):
    base = synth.write_imported(tmp_path / "a", synth.study_rows(seed=3))
    new = synth.write_imported(tmp_path / "b", synth.study_rows(seed=4))
    c = compare.compare(load_results(base), load_results(new))
    assert set(c.points["verdict"]) == {"untested"}
    measured = {m["metric"]: m["measured"] for m in c.metrics}
    assert measured["throughput_gbps"] == "both" and measured["copies_per_byte"] == "neither"
    assert any("copies per byte" in b.text and "not compared" in b.text for b in render(c))


def test_a_named_metric_is_compared_and_an_unknown_one_refused(tmp_path):
    base, new = pair(tmp_path, new={"gbps_factor": {SLOW: 0.8}})
    c = compare.compare(base, new, ["cycles_per_byte", "syscall_ns_per_byte"])
    assert c.compared_metrics == ["cycles_per_byte", "syscall_ns_per_byte"]
    assert set(c.points["verdict"]) == {"same"}   # per byte, the slowdown costs nothing more
    with pytest.raises(UsageError, match="unknown metric 'cycles'"):
        compare.compare(base, new, ["cycles"])


# ----------------------------------------------------------------------------- the CLI

def test_cli_fail_on_regression_exit_codes(tmp_path, capsys):
    base, new = synth.write_pair(tmp_path, new={"gbps_factor": {SLOW: 0.8}})
    assert cli_main(["compare", str(base), str(new), "--fail-on-regression", "10"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 significant slowdown(s) of 10% or more" in err and "zero_copy 1 KiB x1" in err
    assert cli_main(["compare", str(base), str(new), "--fail-on-regression", "30"]) == 0
    assert "no significant slowdown of 30% or more" in capsys.readouterr().out
    assert cli_main(["compare", str(base), str(new)]) == 0
    # a chosen metric that did not get worse: no regression
    assert cli_main(["compare", str(base), str(new), "--metric", "cpu_s_per_gb", "--fail-on-regression", "5"]) == 0


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    base, _ = synth.write_pair(tmp_path)
    (tmp_path / "empty").mkdir()
    assert cli_main(["compare", str(base), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netobs: error: ") and err.count("\n") == 1 and "not a netobs results directory" in err


def test_cli_json_carries_every_number_and_text_is_from_the_facts(tmp_path, capsys):
    base, new = synth.write_pair(tmp_path, new={"gbps_factor": {SLOW: 0.8}})
    assert cli_main(["compare", str(base), str(new), "--json", "--fail-on-regression", "10"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert len(out["points"]) == 48 * 4
    row = next(p for p in out["points"] if (p["implementation"], p["msg_size"], p["threads"]) == SLOW
               and p["metric"] == "throughput_gbps")
    assert set(row) >= {"base_median", "new_median", "ratio", "change_pct", "p_value", "significant", "verdict",
                        "n_base", "n_new"}
    assert out["summary"]["counts"]["throughput_gbps"]["slower"] == 1
    assert out["regressions"][0]["implementation"] == "zero_copy"
    assert cli_main(["compare", str(base), str(new)]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 160   # piped: the fixed wide width
    line = next(line for line in text.splitlines() if re.match(r"zero_copy\s+1 KiB\s+1\s", line))
    assert re.search(r" -(1[89]|2[01])\.\d% ", line) and "slower" in line and "p<0.001" in line
    assert text.index("What differs") < text.index("throughput (Gbit/s)") < text.index("Summary")


# ----------------------------------------------------------------------------- import with repeats

def test_import_with_repeats_round_trips_and_compares_with_significance(tmp_path):
    a = synth.write_study_csv(tmp_path / "a.csv", synth.study_rows(seed=3, repeats=3))
    b = synth.write_study_csv(tmp_path / "b.csv", synth.study_rows(seed=4, repeats=3, gbps_factor={SLOW: 0.8}))
    import_study_csv(str(a), str(tmp_path / "ia"), duration=10)
    store, notes = import_study_csv(str(b), str(tmp_path / "ib"), duration=10)
    assert len(store.rows) == 48 * 3 and not any("ignored columns" in n for n in notes)
    ra, rb = load_results(tmp_path / "ia"), load_results(tmp_path / "ib")
    assert ra.min_repeats() == ra.max_repeats() == 3 and ra.manifest["matrix"]["repeats"] == 3
    assert sorted(ra.runs["repeat"].unique()) == [0, 1, 2]
    assert flagged(compare.compare(ra, rb)) == {SLOW}


def test_import_refuses_a_duplicate_point_and_repeat(tmp_path):
    rows = synth.study_rows(repeats=2)
    rows[1]["repeat"] = 0   # the first point's second row says repeat 0 again
    src = synth.write_study_csv(tmp_path / "dup.csv", rows)
    with pytest.raises(UsageError, match="row 3: duplicate point two_copy/1024/1 repeat 0"):
        import_study_csv(str(src), str(tmp_path / "out"), duration=10)
    assert not (tmp_path / "out").exists()


def test_import_without_a_repeat_column_refuses_a_second_row_naming_the_column(tmp_path):
    rows = synth.study_rows()
    src = synth.write_study_csv(tmp_path / "dup.csv", rows[:1] + rows)
    with pytest.raises(UsageError, match="duplicate point two_copy/1024/1") as exc:
        import_study_csv(str(src), str(tmp_path / "out"), duration=10)
    assert "`repeat` column" in exc.value.fix


# ----------------------------------------------------------------------------- report --baseline

def _specs(html: str) -> dict:
    """Each drawn chart's Vega-Lite spec (the page's shared data sets put back), by its data-chart name."""
    return dict(report.specs_in(html))


def test_report_baseline_section_has_the_ratio_heat_map_and_the_changed_verdicts(tmp_path):
    base, new = synth.write_pair(tmp_path, new={"gbps_factor": {SLOW: 0.8},
                                                "crossover": {"one_copy": None, "zero_copy": 65536}})
    b, n = load_results(base), load_results(new)
    answers = answer_all(n)
    html = report.render_report(n, answers, report.baseline(b, n, answers))
    assert html.count('<section id="comparison">') == 1
    assert html.index('id="summary"') < html.index('id="comparison"') < html.index('id="questions"')
    spec = _specs(html)["comparison"]
    data = spec["datasets"][spec["data"]["name"]]
    assert len(data) == 48
    cell = next(d for d in data if (d["implementation"], d["msg_size"], d["threads"]) == SLOW)
    assert cell["verdict"] == "slower" and cell["ratio"] == pytest.approx(0.8, abs=0.03) and cell["label"] == f"x{cell['ratio']:.2f}"
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["rect", "text"]
    color = layers[0]["encoding"]["color"]
    # the report's one ratio scale (log, centred at x1), coloured by the ratio within its clamp
    assert color["field"] == "shade" and color["scale"]["type"] == "log" and color["scale"]["domainMid"] == 1
    assert spec["facet"]["column"]["field"] == "implementation"
    assert {layers[0]["encoding"]["x"]["field"], layers[0]["encoding"]["y"]["field"]} == {"threads", "msg_size"}
    section = html[html.index('<section id="comparison">'):html.index('<section id="questions">')]
    assert "verdict-changes" in section and "never beats two_copy" in section
    assert section.count("<tr>") - 1 == 1   # one question's verdict changed: one row under the header


def test_report_without_baseline_has_no_comparison(tmp_path):
    base, _ = synth.write_pair(tmp_path)
    html = report.render_report(load_results(base))
    assert 'id="comparison"' not in html and "comparison" not in _specs(html)


def test_cli_report_baseline_writes_the_section(tmp_path, capsys):
    base, new = synth.write_pair(tmp_path)
    out = tmp_path / "r.html"
    assert cli_main(["report", str(new), "--baseline", str(base), "-o", str(out)]) == 0
    assert '<section id="comparison">' in out.read_text()
    assert cli_main(["report", str(new), "--baseline", str(base), "--format", "png", "--out-dir",
                     str(tmp_path / "f")]) == 2


# ----------------------------------------------------------------------------- the accounting (issue 23)
PROFILED = Path(__file__).resolve().parent / "fixtures" / "profiled-sweep"


def _profiled_copy(tmp_path, name, edit):
    """The real profiled sweep copied with `edit(df)` applied to its runs.csv."""
    import shutil
    import pandas as pd
    d = tmp_path / name
    shutil.copytree(PROFILED, d)
    df = pd.read_csv(d / "runs.csv")
    edit(df).to_csv(d / "runs.csv", index=False)
    return d


def test_compare_accounts_the_gap_by_class_summing_to_the_whole_with_the_planted_class_supported(tmp_path):
    def plant(df):
        m = df.implementation == "one_copy"
        df.loc[m, "prof_client_user_copy_cpu_s_per_gb"] += 1.0   # +1 CPU-s/GB at one_copy's 4 configurations
        df.loc[m, "throughput_gbps"] *= 0.5
        return df
    base, new = fixture_results(PROFILED), load_results(_profiled_copy(tmp_path, "new", plant))
    c = compare.compare(base, new)
    a = c.accounting
    assert a["aggregate"] == compare.acc.COST_AGGREGATE
    for role, side in a["whole"].items():
        assert sum(v["gap"] for v in side["classes"].values()) == pytest.approx(side["total_cpu_s_per_gb"], abs=1e-9)
    # 1 CPU-s/GB at 4 of the 12 configurations: 1/3 over the whole comparison, all of it user copy
    whole = a["whole"]["client"]
    assert whole["classes"]["user_copy"]["gap"] == pytest.approx(1 / 3, abs=1e-9)
    assert whole["total_cpu_s_per_gb"] == pytest.approx(1 / 3, abs=1e-9)
    assert whole["judgements"]["user_copy"]["status"] == "supported" and whole["supported"] == ["user_copy"]
    assert whole["judgements"]["tcp_send"]["status"] == "contradicted"
    # each changed point alone: its gap is the planted 1 CPU-s/GB
    assert a["points"] and {p["implementation"] for p in a["points"]} == {"one_copy"}
    for p in a["points"]:
        assert p["accounting"]["client"]["classes"]["user_copy"]["gap"] == pytest.approx(1.0, abs=1e-9)
    text = "\n".join(b.text for b in render(c))
    assert "new cost 0.333 CPU-s/GB more than base" in text and "user copy 100%" in text
    assert json.loads(json.dumps(c.to_dict()))["accounting"]["whole"]["client"]["supported"] == ["user_copy"]


def test_compare_judges_a_mechanism_as_the_answers_do_on_the_same_evidence(tmp_path):
    """NEW is BASE with one_copy's rows replaced by zero_copy's: compare's one_copy points are then
    the study's zero_copy-vs-one_copy scope, and every mechanism gets the hypotheses' verdict."""
    import pandas as pd

    def swap(df):
        zc = df[df.implementation == "zero_copy"].assign(implementation="one_copy")
        return pd.concat([df[df.implementation != "one_copy"], zc], ignore_index=True)
    base, new = fixture_results(PROFILED), load_results(_profiled_copy(tmp_path, "new", swap))
    points = [("one_copy", s, t) for s in (4096, 65536) for t in (1, 2)]
    mine = compare._accounted(new.runs, base.runs, points)
    from netobs.analysis import hypotheses as hyp
    s = hyp.Scope(at=tuple(("zero_copy", a, b) for _, a, b in points), ref=tuple(points))
    for role in ("client", "server", "both"):
        theirs = {j.name: j.status for j in hyp.judge(base, s, [n for n in compare.acc.MECHANISMS
                                                                 if n not in ("deferred_copy", "scheduling")], role)}
        for name, status in theirs.items():
            assert mine[role]["judgements"][name]["status"] == status, (role, name)
        t = compare.acc.account(base, s, role)
        assert mine[role]["total_cpu_s_per_gb"] == pytest.approx(t.total, abs=1e-9)


def test_compare_without_profiles_says_what_is_not_accounted(tmp_path):
    c = compare.compare(*pair(tmp_path))
    assert "not profiled" in c.accounting["not_measured"]
    assert any("Not accounted: base and new not profiled" in b.text for b in render(c))
