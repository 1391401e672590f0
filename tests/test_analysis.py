"""The analysis: loading, per-byte normalisation, statistics and the six answers.

Synthetic results directories (tests/synth.py) plant known truths; each answer must find
exactly them, from the numbers, and change when the numbers change. No root needed.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402

from netobs.analysis import stats  # noqa: E402
from netobs.analysis.answer import Answer  # noqa: E402
from netobs.analysis.load import DERIVED, load_results  # noqa: E402
from netobs.analysis.questions import QUESTIONS, answer_all  # noqa: E402
from netobs.errors import UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ANOMALY = ("two_copy", 16384, 4, 0.5)


def answers(path, **kw) -> dict[str, Answer]:
    return {a.question: a for a in answer_all(load_results(path), **kw)}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """3 repeats, one_copy crosses at 16384, zero_copy at 65536, L1-only reduction, clean trends."""
    return answers(synth.write_results(tmp_path_factory.mktemp("base")))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return answers(synth.write_results(tmp_path_factory.mktemp("single"), repeats=1))


# ------------------------------------------------------------------------------- statistics
def test_t_quantiles_and_welch_match_tables():
    for df, t in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert stats.t_ppf(0.975, df) == pytest.approx(t, abs=1e-4)
    t, p = stats.welch([1, 2, 3], [4, 5, 6])
    assert t == pytest.approx(3.6742, abs=1e-4) and p == pytest.approx(0.02131, abs=1e-4)
    assert stats.sign_test(10, 0) == pytest.approx(2 / 1024)
    assert stats.sign_test(5, 5) == 1.0


def test_summary_and_comparison_over_repeats():
    s = stats.summarize([10, 11, 12])
    assert (s.n, s.median, s.cv) == (3, 11.0, pytest.approx(1 / 11))
    assert (s.ci_low, s.ci_high) == (pytest.approx(11 - 4.3027 / math.sqrt(3), abs=1e-3),
                                     pytest.approx(11 + 4.3027 / math.sqrt(3), abs=1e-3))
    one = stats.summarize([5.0])
    assert one.n == 1 and math.isnan(one.ci_low) and math.isnan(one.cv)
    assert stats.summarize([10, 14, 10]).high_cv
    c = stats.compare([10, 11, 12], [13, 14, 15])
    assert c.significant is True and c.change_pct == pytest.approx(100 * (14 / 11 - 1))
    single = stats.compare([10], [13, 14, 15])
    assert single.significant is None and "no significance can be claimed" in single.note


# ------------------------------------------------------------------------------- loading
def test_derived_columns_are_per_byte_and_missing_stays_nan(tmp_path):
    r = load_results(synth.write_results(tmp_path / "r", repeats=1, hw_counters=False))
    row = r.runs.iloc[0]
    b = row.bytes_sent
    assert row.gbytes == pytest.approx(b / 1e9)
    assert row.cs_per_mib == pytest.approx(row.context_switches / (b / 2 ** 20))
    assert row.cpu_s_per_gb == pytest.approx((row.cpu_user_s + row.cpu_sys_s) / (b / 1e9))
    assert row.syscall_ns_per_byte == pytest.approx(row.trace_client_send_syscall_ns / row.bytes_sent_total)
    # hardware counters not supported: NaN with the manifest's reason, never 0
    for col in ("cpu_cycles", "l1_cache_misses", "llc_cache_misses", "cycles_per_byte",
                "l1_misses_per_kib", "llc_misses_per_kib"):
        assert r.runs[col].isna().all(), col
    assert "no PMU" in r.missing_reason("l1_cache_misses")
    zc = r.runs[r.runs.implementation == "zero_copy"]
    assert (zc.zc_copied_fraction == 1.0).all()
    assert r.runs[r.runs.implementation == "two_copy"].zc_copied_fraction.isna().all()  # 0/0 is not 0
    assert (r.runs[r.runs.implementation == "two_copy"].user_copy_per_byte == 1).all()
    assert (zc.send_copy_per_byte == 0).all() and np.allclose(zc.rx_copy_per_byte, 1.0)


def test_imported_bytes_come_from_throughput_times_duration(tmp_path):
    r = load_results(synth.write_imported(tmp_path / "imp", synth.study_rows(), duration=10))
    assert r.imported and r.host_cores is None
    assert np.allclose(r.runs.bytes_sent, r.runs.throughput_gbps * 1e9 / 8 * 10)
    assert np.allclose(r.runs.cycles_per_byte, r.runs.cpu_cycles / r.runs.bytes_sent)
    assert r.runs.cpu_s_per_gb.isna().all() and r.runs.copies_per_byte.isna().all()


def test_doubling_a_points_duration_changes_no_per_byte_figure_and_no_verdict(tmp_path):
    kw = dict(anomaly=ANOMALY, cores=4)
    scaled = {("zero_copy", 4096, 2, r): 2.0 for r in range(3)} | {("two_copy", 16384, 4, 1): 2.0,
                                                                     ("one_copy", 1024, 8, 0): 3.0}
    a, b = synth.write_results(tmp_path / "a", **kw), synth.write_results(tmp_path / "b", scale=scaled, **kw)
    ra, rb = load_results(a), load_results(b)
    per_byte = [c for c in DERIVED if c != "gbytes"]
    pd.testing.assert_frame_equal(ra.runs[per_byte], rb.runs[per_byte], rtol=1e-9)
    assert not np.allclose(ra.runs.gbytes, rb.runs.gbytes)  # the raw amounts did change
    for x, y in zip(answer_all(ra), answer_all(rb)):
        assert x.verdict == y.verdict, x.question


@pytest.mark.parametrize("damage, expect", [
    ("no_dir", "does not exist"),
    ("no_manifest", "no manifest.json"),
    ("bad_manifest", "cannot read"),
    ("old_schema", "schema_version"),
    ("no_runs", "has no runs.csv"),
    ("empty_runs", "is empty"),
    ("header_only", "has no points"),
    ("missing_column", "missing column(s) llc_cache_misses"),
    ("not_a_number", "is not a number"),
    ("all_failed", "no successful points"),
])
def test_damaged_or_empty_directory_is_a_clear_usage_error(tmp_path, damage, expect):
    d = synth.write_results(tmp_path / "r", repeats=1, sizes=(1024,), threads=(1,))
    runs, manifest = d / "runs.csv", d / "manifest.json"
    if damage == "no_dir":
        d = tmp_path / "nowhere"
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{ not json")
    elif damage == "old_schema":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 99}))
    elif damage == "no_runs":
        runs.unlink()
    elif damage == "empty_runs":
        runs.write_text("")
    elif damage == "header_only":
        runs.write_text(runs.read_text().splitlines()[0] + "\n")
    elif damage == "missing_column":
        df = pd.read_csv(runs, dtype=str, keep_default_na=False).drop(columns=["llc_cache_misses"])
        df.to_csv(runs, index=False)
    elif damage == "not_a_number":
        df = pd.read_csv(runs, dtype=str, keep_default_na=False)
        df.loc[0, "throughput_gbps"] = "fast"
        df.to_csv(runs, index=False)
    elif damage == "all_failed":
        df = pd.read_csv(runs, dtype=str, keep_default_na=False)
        df["status"], df["error"] = "failed", "worker: connection refused"
        df.to_csv(runs, index=False)
    with pytest.raises(UsageError) as err:
        load_results(d)
    msg = err.value.message
    assert expect in msg and "try" in msg
    assert str(d.name) in msg or "nowhere" in msg


# ------------------------------------------------------------------------------- crossovers
def test_crossovers_found_exactly_where_planted(base):
    one = base["one-copy-crossover"]
    assert one.facts["crossover_by_threads"] == {"1": 16384, "2": 16384, "4": 16384, "8": 16384}
    assert all(i["stays_ahead"] for i in one.facts["by_threads"].values())
    assert one.facts["tested"] is True
    assert "first beats two_copy at 16384 B" in one.verdict and "significant" in one.verdict
    zero = base["zero-copy-crossover"]
    assert zero.facts["common_crossover"] == 65536
    # the evidence agrees with the verdict: beats exactly at sizes >= the crossover
    ev = one.evidence
    assert (ev.beats == (ev.msg_size >= 16384)).all()


def test_behind_again_only_where_behind_and_says_if_significant(tmp_path):
    # one_copy crosses at 16384; at 65536 it is level with two_copy at 1 thread (within noise)
    # and clearly behind at 2 threads
    factor = {("one_copy", 65536, 1): 1.0 / 1.15, ("one_copy", 65536, 2): 0.8 / 1.15}
    one = answers(synth.write_results(tmp_path / "r", gbps_factor=factor))["one-copy-crossover"]
    by_t = one.facts["by_threads"]
    assert by_t["4"]["stays_ahead"] and by_t["4"]["behind_again_at"] == []
    assert by_t["2"]["behind_again_at"] == [65536] and by_t["2"]["behind_again_significant_at"] == [65536]
    level = by_t["1"]
    assert level["behind_again_significant_at"] == []  # behind or ahead by noise only: never "significantly"
    assert "significantly at 65536 B" in one.verdict


def test_anomaly_changes_read_in_the_steps_direction(tmp_path):
    # a spike at 2 threads: the steps after it (to 4 threads, to a larger size) fall, and what
    # changed is read from the spike to its neighbour, not the other way round
    a = answers(synth.write_results(tmp_path / "spike", anomaly=("two_copy", 16384, 2, 1.8), cores=64))["anomalies"]
    rows = [x for x in a.facts["anomalies"] if x["kind"] == "throughput fell as threads grew"]
    step = next(x for x in rows if x["step"].startswith("2 threads -> 4 threads at 16384"))
    assert (step["implementation"], step["msg_size"], step["threads"]) == ("two_copy", 16384, 2)  # the spike is named
    assert step["after"] < step["before"]
    assert step["changes"]["cs_per_mib"] < 1  # the spike had 4x the switches: after it, fewer


def test_crossover_never_and_single_repeat(tmp_path, single):
    a = answers(synth.write_results(tmp_path / "never", crossover={"one_copy": 16384, "zero_copy": None}))
    z = a["zero-copy-crossover"]
    assert z.facts["crossover_by_threads"] == {"1": None, "2": None, "4": None, "8": None}
    assert "never beats two_copy within the tested sizes" in z.verdict
    one = single["one-copy-crossover"]
    assert one.facts["common_crossover"] == 16384 and one.facts["tested"] is False
    assert "untested" in one.verdict
    assert any("measured once" in c and "no significance" in c for c in one.caveats)


def test_answers_change_when_the_data_changes(tmp_path, base):
    other = answers(synth.write_results(
        tmp_path / "other", crossover={"one_copy": 4096, "zero_copy": 16384}, l1_reduction=0.05,
        llc_reduction=0.5, anomaly=("one_copy", 65536, 8, 0.4), cores=4, seed=7))
    for name in QUESTIONS:
        assert other[name].verdict != base[name].verdict, name
    assert other["one-copy-crossover"].facts["common_crossover"] == 4096
    assert other["zero-copy-crossover"].facts["common_crossover"] == 16384
    assert other["cache"].facts["largest_level"] == "LLC"
    assert other["threads"].facts["oversubscribed_threads"] == [4, 8]


# ------------------------------------------------------------------------------- cache
def test_cache_reduction_planted_at_l1_only(base):
    c = base["cache"]
    assert c.facts["largest_level"] == "L1"
    assert c.facts["pooled"]["L1"]["median"] == pytest.approx(40, abs=2)
    assert abs(c.facts["pooled"]["LLC"]["median"]) < 2
    for impl in ("one_copy", "zero_copy"):
        assert c.facts["by_strategy"][impl]["L1"]["fewer_misses"] == 16
        assert c.facts["by_strategy"][impl]["L1"]["significant_reductions"] == 16
        assert c.facts["by_strategy"][impl]["LLC"]["significant_reductions"] < 8
    assert c.facts["sign_test_p"] < 0.001
    assert "The largest reduction is at L1" in c.verdict
    # the verdict's numbers are the evidence's numbers
    l1 = c.evidence[(c.evidence.level == "L1") & (c.evidence.implementation == "one_copy")]
    assert f"{l1.reduction_pct.median():.1f}%" in c.verdict


def test_missing_hardware_counters_are_said_and_replaced(tmp_path):
    a = answers(synth.write_results(tmp_path / "vm", hw_counters=False))
    c = a["cache"]
    assert c.facts["largest_level"] is None and c.facts["levels_measured"] == []
    assert "No cache-miss counts were measured" in c.verdict and "no PMU in this VM" in c.verdict
    assert "CPU-seconds per GB" in c.verdict  # what was measured instead
    assert any("L1-dcache-load-misses" in cv for cv in c.caveats)
    t = a["threads"]
    assert "L1 misses" not in t.verdict and any("not measured" in cv for cv in t.caveats)


# ------------------------------------------------------------------------------- threads
def test_threads_trends_and_oversubscription(tmp_path, base):
    t = base["threads"]
    assert t.facts["oversubscribed_threads"] == [] and "No tested thread count oversubscribes" in t.verdict
    ratio = t.facts["ratio_max_over_min_threads"]
    assert ratio["throughput_gbps"]["median"] == pytest.approx(8 ** 0.6, rel=0.05)
    assert ratio["llc_misses_per_kib"]["median"] == pytest.approx(1.3, rel=0.05)   # planted contention
    assert ratio["llc_misses_per_kib"]["rose"] == 12 and ratio["l1_misses_per_kib"]["rose"] == 0
    small = answers(synth.write_results(tmp_path / "small", cores=4))["threads"]
    assert small.facts["host_cores"] == 4 and small.facts["oversubscribed_threads"] == [4, 8]
    assert "8 and 16 busy threads on 4 cores" in small.verdict
    imp = answers(synth.write_imported(tmp_path / "imp", synth.study_rows()))["threads"]
    assert imp.facts["host_cores"] is None and "core count is unknown" in imp.verdict


# ------------------------------------------------------------------------------- zerocopy
def test_zerocopy_where_it_lost_and_the_measured_mechanism(tmp_path, base):
    z = base["zerocopy"]
    vs = z.facts["vs"]["two_copy"]
    assert (vs["won"], vs["lost"]) == (4, 12)  # wins only at 65536 B
    assert z.facts["median_wins_from_size"] == 65536
    assert z.facts["mechanism"]["zc_copied_fraction"] == pytest.approx(1.0)
    assert "100% of zero-copy completions as copied" in z.verdict
    assert "10 KB" in z.verdict and "Context, not evidence" in z.verdict
    lost = z.evidence[z.evidence.outcome_vs_two_copy == "lost"]
    assert (lost.msg_size < 65536).all()
    real = answers(synth.write_results(tmp_path / "nic", copied_fraction=0.0))["zerocopy"]
    assert "did avoid the copy" in real.verdict and "copied anyway" not in real.verdict


# ------------------------------------------------------------------------------- anomalies
def test_planted_anomaly_is_found_ranked_and_explained(tmp_path, base):
    assert base["anomalies"].facts["count"] == 0 and "No result breaks the expected trends" in base["anomalies"].verdict
    a = answers(synth.write_results(tmp_path / "anom", anomaly=ANOMALY, cores=4,
                                    failed=[("zero_copy", 1024, 1, 2, "worker: ENOBUFS storm")]))["anomalies"]
    trend = a.evidence[a.evidence.kind.str.startswith(("throughput fell", "latency inversion"))]
    assert a.facts["count"] == len(trend) >= 2
    assert set(map(tuple, trend[["implementation", "msg_size", "threads"]].values)) == {ANOMALY[:3]}
    assert list(a.evidence["rank"]) == list(range(1, len(a.evidence) + 1))
    assert (trend.score.diff().dropna() <= 0).all()  # ranked by magnitude relative to noise
    assert "two_copy at 16384 B x 4 threads" in a.verdict
    assert "context switches per MiB" in a.verdict and "LLC" in a.verdict  # what changed with it
    assert "failed point" in set(a.evidence.kind) and "ENOBUFS storm" in " ".join(a.evidence.what_changed)


# ------------------------------------------------------------------------------- every answer
def test_every_answer_is_complete_and_json_safe(base, single):
    for ans in list(base.values()) + list(single.values()):
        assert ans.verdict and ans.title and isinstance(ans.facts, dict)
        assert not ans.evidence.empty and not ans.chart_data.empty
        assert {"implementation", "msg_size", "threads"} <= set(ans.chart_data.columns)
        json.dumps(ans.to_dict(), allow_nan=False)


def test_unknown_question_lists_the_valid_ones(tmp_path):
    r = load_results(synth.write_results(tmp_path / "r", repeats=1))
    with pytest.raises(UsageError) as err:
        answer_all(r, ["cache", "caches"])
    assert "caches" in err.value.message and "one-copy-crossover" in err.value.message


# ------------------------------------------------------------------------------- CLI
def netobs(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "netobs", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_cli_explains_an_imported_study_csv_end_to_end(tmp_path):
    csv_file = synth.write_study_csv(tmp_path / "study.csv", synth.study_rows(hw_counters=False))
    netobs("import", str(csv_file), "--duration", "10", "-o", str(tmp_path / "imp"))
    out = json.loads(netobs("explain", str(tmp_path / "imp"), "--json").stdout)
    assert out["source"] == "import" and [a["question"] for a in out["answers"]] == list(QUESTIONS)
    by = {a["question"]: a for a in out["answers"]}
    assert by["one-copy-crossover"]["facts"]["common_crossover"] == 16384
    assert by["cache"]["facts"]["largest_level"] is None and "No cache-miss counts" in by["cache"]["verdict"]
    assert all(a["verdict"] and (a["evidence"] or a["question"] == "cache") for a in out["answers"])
    # no counters, no CPU times, no traces: the cache answer says there is nothing to substitute
    assert "no substitute evidence" in by["cache"]["verdict"] and not by["cache"]["evidence"]
    text = netobs("explain", str(tmp_path / "imp"), "-q", "one-copy-crossover").stdout
    assert "one-copy-crossover" in text and "16384" in text and "Caveats" in text and "zerocopy:" not in text


def test_cli_on_an_import_as_netobs_import_writes_it(tmp_path):
    d = synth.write_imported(tmp_path / "imp", synth.study_rows())
    out = json.loads(netobs("explain", str(d), "--json", "-q", "cache,threads").stdout)
    assert [a["question"] for a in out["answers"]] == ["cache", "threads"]
    assert out["answers"][0]["facts"]["largest_level"] == "L1"


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    d = synth.write_results(tmp_path / "r", repeats=1)
    p = netobs("explain", str(d), "--question", "cachez", check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "zero-copy-crossover" in p.stderr
    (tmp_path / "empty").mkdir()
    p = netobs("explain", str(tmp_path / "empty"), check=False)
    assert p.returncode == 2 and p.stderr.startswith("netobs: error:") and "manifest.json" in p.stderr
    assert "Examples:" in netobs("explain", "--help").stdout


def test_a_wide_results_file_loads_without_pandas_warnings(tmp_path):
    """Every perf event twice (client window, server life) makes over 100 columns; the loader
    builds the frame at once, so explain and report print no PerformanceWarning."""
    import warnings

    from netobs.perf import DEFAULT_EVENTS
    from netobs.store import ResultsDir
    store = ResultsDir.create(tmp_path / "wide", {"source": "test"}, list(DEFAULT_EVENTS),
                              server_events=list(DEFAULT_EVENTS))
    store.add_point({"impl": "one_copy", "msg_size": 4096, "threads": 1, "throughput_gbps": 2.0,
                     "latency_us": {"mean": 3.0}, "bytes_sent": 10**9, "window_s": 4.0})
    assert len(store.columns) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = load_results(tmp_path / "wide")
    assert len(res.runs) == 1 and "server_perf_task_clock" in res.runs
