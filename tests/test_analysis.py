"""The analysis: loading, per-byte normalisation, statistics and the six answers.

Synthetic results directories (tests/synth.py) plant known truths; each answer must find
exactly them, from the numbers, and change when the numbers change. No root needed.
"""
from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, cli, read_runs, write_runs

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402

from netobs.analysis import stats  # noqa: E402
from netobs.analysis.answer import Answer  # noqa: E402
from netobs.analysis.load import DERIVED, load_results  # noqa: E402
from netobs.analysis.questions import QUESTIONS, answer_all  # noqa: E402
from netobs.errors import UsageError  # noqa: E402

ROOT = REPO
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
def test_t_interval_welch_and_sign_test_match_tables():
    # t(0.975, df) from printed tables: the interval is mean +- t * s / sqrt(n)
    for n, t in ((2, 12.7062), (3, 4.3027), (5, 2.7764), (11, 2.2281), (31, 2.0423)):
        low, high = stats.t_interval(10.0, 2.0, n)
        assert (10 - low, high - 10) == (pytest.approx(t * 2 / math.sqrt(n), abs=1e-4),) * 2
    assert all(math.isnan(v) for v in stats.t_interval(10.0, 2.0, 1))
    t, p = stats.welch([1, 2, 3], [4, 5, 6])
    assert t == pytest.approx(3.6742, abs=1e-4) and p == pytest.approx(0.02131, abs=1e-4)
    assert stats.welch([5, 5], [5, 5]) == (0.0, 1.0) and stats.welch([5, 5], [6, 6])[1] == 0.0
    assert math.isnan(stats.welch([1], [2, 3])[1])
    assert stats.sign_test(10, 0) == pytest.approx(2 / 1024)
    assert stats.sign_test(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert stats.sign_test(5, 5) == 1.0 and stats.sign_test(0, 0) == 1.0


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
    assert single.significant is None and math.isnan(single.p_value)


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
    ("not_a_number", "not a number"),
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
        df["throughput_gbps"] = "fast"   # every row (one bad row is left out and named: test_nothing_lost)
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
    assert one.facts_dict()["crossover_by_threads"] == {"1": 16384, "2": 16384, "4": 16384, "8": 16384}
    assert all(i["stays_ahead"] for i in one.facts_dict()["by_threads"].values())
    assert one.facts_dict()["tested"] is True
    assert "first beats two_copy at 16384 B" in one.verdict and "significant" in one.verdict
    zero = base["zero-copy-crossover"]
    assert zero.facts_dict()["common_crossover"] == 65536
    # the evidence agrees with the verdict: beats exactly at sizes >= the crossover
    ev = one.evidence
    assert (ev.beats == (ev.msg_size >= 16384)).all()


def test_behind_again_only_where_behind_and_says_if_significant(tmp_path):
    # one_copy crosses at 16384; at 65536 it is level with two_copy at 1 thread (within noise)
    # and clearly behind at 2 threads
    factor = {("one_copy", 65536, 1): 1.0 / 1.15, ("one_copy", 65536, 2): 0.8 / 1.15}
    one = answers(synth.write_results(tmp_path / "r", gbps_factor=factor))["one-copy-crossover"]
    by_t = one.facts_dict()["by_threads"]
    assert by_t["4"]["stays_ahead"] and by_t["4"]["behind_again_at"] == []
    assert by_t["2"]["behind_again_at"] == [65536] and by_t["2"]["behind_again_significant_at"] == [65536]
    level = by_t["1"]
    assert level["behind_again_significant_at"] == []  # behind or ahead by noise only: never "significantly"
    assert "significantly at 65536 B" in one.verdict


def test_anomaly_changes_read_in_the_steps_direction(tmp_path):
    # a spike at 2 threads: the steps after it (to 4 threads, to a larger size) fall, and what
    # changed is read from the spike to its neighbour, not the other way round
    a = answers(synth.write_results(tmp_path / "spike", anomaly=("two_copy", 16384, 2, 1.8), cores=64))["anomalies"]
    rows = [x for x in a.facts_dict()["anomalies"] if x["kind"] == "throughput fell as threads grew"]
    step = next(x for x in rows if x["step"].startswith("2 threads -> 4 threads at 16384"))
    assert (step["implementation"], step["msg_size"], step["threads"]) == ("two_copy", 16384, 2)  # the spike is named
    assert step["after"] < step["before"]
    assert step["changes"]["cs_per_mib"] < 1  # the spike had 4x the switches: after it, fewer


def test_crossover_never_and_single_repeat(tmp_path, single):
    a = answers(synth.write_results(tmp_path / "never", crossover={"one_copy": 16384, "zero_copy": None}))
    z = a["zero-copy-crossover"]
    assert z.facts_dict()["crossover_by_threads"] == {"1": None, "2": None, "4": None, "8": None}
    assert "never beats two_copy within the tested sizes" in z.verdict
    one = single["one-copy-crossover"]
    assert one.facts_dict()["common_crossover"] == 16384 and one.facts_dict()["tested"] is False
    assert "untested" in one.verdict
    assert any("measured once" in c and "no significance" in c for c in one.caveats)


def test_answers_change_when_the_data_changes(tmp_path, base):
    other = answers(synth.write_results(
        tmp_path / "other", crossover={"one_copy": 4096, "zero_copy": 16384}, l1_reduction=0.05,
        llc_reduction=0.5, anomaly=("one_copy", 65536, 8, 0.4), cores=4, seed=7))
    for name in QUESTIONS:
        assert other[name].verdict != base[name].verdict, name
    assert other["one-copy-crossover"].facts_dict()["common_crossover"] == 4096
    assert other["zero-copy-crossover"].facts_dict()["common_crossover"] == 16384
    assert other["cache"].facts_dict()["largest_level"] == "LLC"
    assert other["threads"].facts_dict()["oversubscribed_threads"] == [4, 8]


# ------------------------------------------------------------------------------- cache
def test_cache_reduction_planted_at_l1_only(base):
    c = base["cache"]
    assert c.facts_dict()["largest_level"] == "L1"
    assert c.facts_dict()["pooled"]["L1"]["median"] == pytest.approx(40, abs=2)
    assert abs(c.facts_dict()["pooled"]["LLC"]["median"]) < 2
    for impl in ("one_copy", "zero_copy"):
        assert c.facts_dict()["by_strategy"][impl]["L1"]["fewer_misses"] == 16
        assert c.facts_dict()["by_strategy"][impl]["L1"]["significant_reductions"] == 16
        assert c.facts_dict()["by_strategy"][impl]["LLC"]["significant_reductions"] < 8
    assert c.facts_dict()["sign_test_p"] < 0.001
    assert c.headline.startswith("The largest relative reduction is at L1")
    # the verdict's numbers are the evidence's numbers
    l1 = c.evidence[(c.evidence.level == "L1") & (c.evidence.implementation == "one_copy")]
    assert f"{l1.reduction_pct.median():.1f}%" in c.verdict


def test_missing_hardware_counters_are_said_and_replaced(tmp_path):
    a = answers(synth.write_results(tmp_path / "vm", hw_counters=False))
    c = a["cache"]
    assert c.facts_dict()["largest_level"] is None and c.facts_dict()["levels_measured"] == []
    assert "No cache-miss counts were measured" in c.verdict and any("no PMU in this VM" in x for x in c.caveats)
    assert "CPU-seconds per GB" in c.verdict  # what was measured instead
    assert any("L1-dcache-load-misses" in cv for cv in c.caveats)
    t = a["threads"]
    assert "L1 misses" not in t.verdict and any("not measured" in cv for cv in t.caveats)


# ------------------------------------------------------------------------------- threads
def test_threads_trends_and_oversubscription(tmp_path, base):
    t = base["threads"]
    assert t.facts_dict()["oversubscribed_threads"] == [] and "No tested thread count oversubscribes" in t.verdict
    ratio = t.facts_dict()["ratio_max_over_min_threads"]
    assert ratio["throughput_gbps"]["median"] == pytest.approx(8 ** 0.6, rel=0.05)
    assert ratio["llc_misses_per_kib"]["median"] == pytest.approx(1.3, rel=0.05)   # planted contention
    assert ratio["llc_misses_per_kib"]["rose"] == 12 and ratio["l1_misses_per_kib"]["rose"] == 0
    small = answers(synth.write_results(tmp_path / "small", cores=4))["threads"]
    assert small.facts_dict()["host_cores"] == 4 and small.facts_dict()["oversubscribed_threads"] == [4, 8]
    assert "8 and 16 threads, assumed busy, on 4 cores" in small.verdict
    imp = answers(synth.write_imported(tmp_path / "imp", synth.study_rows()))["threads"]
    assert imp.facts_dict()["host_cores"] is None and "core count is unknown" in imp.verdict


def test_a_threads_ratio_over_a_tiny_baseline_is_left_out_and_counted(tmp_path):
    """two_copy's fewest-threads off-CPU share made 0.5% (below the declared floor): its series'
    ratios are left out of the off-CPU median, counted; the other strategies' stay."""
    from netobs.analysis.questions import threads
    d = synth.write_results(tmp_path / "t", repeats=1)
    cols, rows = read_runs(d)
    tmin = min(int(r["threads"]) for r in rows)
    for r in rows:
        if r["implementation"] == "two_copy" and int(r["threads"]) == tmin:
            r["trace_client_offcpu_ns"] = repr(0.005 * tmin * (float(r["warmup_s"]) + float(r["window_s"])) * 1e9)
    write_runs(d, cols, rows)
    before = answers(synth.write_results(tmp_path / "u", repeats=1))["threads"].facts_dict()
    after = answers(d)["threads"].facts_dict()
    off0, off = before["ratio_max_over_min_threads"]["offcpu_share"], after["ratio_max_over_min_threads"]["offcpu_share"]
    series = len(synth.SIZES)
    assert threads.TINY_BASELINE["offcpu_share"] > 0.005
    assert off0["tiny_baselines_left_out"] == 0 and off["tiny_baselines_left_out"] == series
    assert off["n"] == off0["n"] - series
    assert after["ratio_max_over_min_threads"]["throughput_gbps"]["n"] == off0["n"]   # only that figure's


# ------------------------------------------------------------------------------- zerocopy
def test_zerocopy_where_it_lost_and_the_measured_mechanism(tmp_path, base):
    z = base["zerocopy"]
    vs = z.facts_dict()["vs"]["two_copy"]
    assert (vs["won"], vs["lost"]) == (4, 12)  # wins only at 65536 B
    assert z.facts_dict()["median_wins_from_size"] == 65536
    assert z.facts_dict()["mechanism"]["zc_copied_fraction"] == pytest.approx(1.0)
    assert "100% of zero-copy completions as copied" in z.verdict
    assert "10 KB" in z.verdict and "Context, not evidence" in z.verdict
    lost = z.evidence[z.evidence.outcome_vs_two_copy == "lost"]
    assert (lost.msg_size < 65536).all()
    real = answers(synth.write_results(tmp_path / "nic", copied_fraction=0.0))["zerocopy"]
    assert "did avoid the copy" in real.verdict and "copied anyway" not in real.verdict


# ------------------------------------------------------------------------------- anomalies
def test_planted_anomaly_is_found_ranked_and_explained(tmp_path, base):
    assert base["anomalies"].facts_dict()["count"] == 0 and "No result breaks the expected trends" in base["anomalies"].verdict
    a = answers(synth.write_results(tmp_path / "anom", anomaly=ANOMALY, cores=4,
                                    failed=[("zero_copy", 1024, 1, 2, "worker: ENOBUFS storm")]))["anomalies"]
    trend = a.evidence[a.evidence.kind.str.startswith(("throughput fell", "latency inversion"))]
    assert a.facts_dict()["count"] == len(trend) >= 2
    assert set(map(tuple, trend[["implementation", "msg_size", "threads"]].values)) == {ANOMALY[:3]}
    assert list(a.evidence["rank"]) == list(range(1, len(a.evidence) + 1))
    assert (trend.score.diff().dropna() <= 0).all()  # ranked by magnitude relative to noise
    assert "two_copy at 16384 B x 4 threads" in a.verdict
    assert "context switches per MiB" in a.verdict and "LLC" in a.verdict  # what changed with it
    assert "failed point" in set(a.evidence.kind) and "ENOBUFS storm" in " ".join(a.evidence.what_changed)


# ------------------------------------------------------------------------------- every answer
def test_every_answer_is_complete_and_json_safe(base, single):
    for ans in list(base.values()) + list(single.values()):
        assert ans.verdict and ans.title and ans.facts.code
        assert not ans.evidence.empty and not ans.chart_data.empty
        assert {"implementation", "msg_size", "threads"} <= set(ans.chart_data.columns)
        json.dumps(ans.to_dict(), allow_nan=False)


# data the results directory itself holds as text (a perf or probe reason, a worker's error)
RECORDED_TEXT = {"reason", "error", "note", "levels_missing"}


def _strings(obj, key=None):
    if key in RECORDED_TEXT:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, k)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v, key)
    elif isinstance(obj, str):
        yield key, obj


@pytest.mark.parametrize("which", ["base", "single", "anomaly", "vm", "imported", "partial"])
def test_facts_hold_codes_and_numbers_and_no_sentence(tmp_path, base, single, which):
    """The facts are codes, names and numbers; every sentence comes from a renderer."""
    made = {"anomaly": lambda: answers(synth.write_results(tmp_path / "a", anomaly=ANOMALY, cores=4, failed=[
                ("zero_copy", 1024, 1, 2, "worker: ENOBUFS storm")])),
            "vm": lambda: answers(synth.write_results(tmp_path / "vm", hw_counters=False, repeats=1)),
            "imported": lambda: answers(synth.write_imported(tmp_path / "imp", synth.study_rows())),
            "partial": lambda: answers(synth.write_results(tmp_path / "p", impls=("two_copy",)))}
    got = {"base": lambda: base, "single": lambda: single, **made}[which]()
    for ans in got.values():
        words = [(k, s) for k, s in _strings(ans.facts.to_dict()) if " " in s]
        assert not words, (ans.question, words)


def test_prose_is_rendered_from_the_facts_alone(base):
    """Change a number in the facts and only the renderer runs again: the words follow."""
    from netobs.analysis.questions import QUESTIONS

    one = base["one-copy-crossover"]
    facts = copy.deepcopy(one.facts)
    for g in facts.groups:
        g.crossover_size = 4096
    prose = QUESTIONS["one-copy-crossover"].render(facts)
    assert "first beats two_copy at 4096 B" in prose.verdict and "16384 B" not in prose.verdict.split(".")[0]
    z = copy.deepcopy(base["zerocopy"].facts)
    z.mechanism["zc_copied_fraction"], z.mechanism_code = 0.2, "copy_avoided"
    assert "Only 20% of zero-copy completions were flagged copied" in QUESTIONS["zerocopy"].render(z).verdict


def test_results_that_cannot_answer_say_why(tmp_path):
    only_two = answers(synth.write_results(tmp_path / "two", impls=("two_copy",), sizes=(1024, 4096)))
    z = only_two["zerocopy"]
    assert z.facts.code == "no_zero_copy" and z.evidence.empty and z.chart_note == z.verdict
    assert z.verdict == ("There are no zero_copy points in these results (strategies: two_copy), so zero-copy "
                         "cannot be assessed.")
    assert only_two["cache"].verdict == "There are no one_copy or zero_copy points to compare with two_copy."
    assert only_two["one-copy-crossover"].facts_dict()["missing"] == "one_copy"
    assert "lack one_copy points" in only_two["one-copy-crossover"].verdict
    savers = answers(synth.write_results(tmp_path / "savers", impls=("one_copy", "zero_copy"), sizes=(1024, 4096)))
    assert savers["cache"].verdict.startswith("There are no two_copy points to measure a reduction against")
    assert savers["zerocopy"].headline.startswith("zero_copy never beat one_copy")
    assert "Against one_copy, zero_copy won in" in savers["zerocopy"].verdict
    one_t = answers(synth.write_results(tmp_path / "one_t", threads=(4,)))["threads"]
    assert one_t.facts.code == "one_thread_count" and one_t.verdict.startswith("Only one thread count (4)")


def test_json_carries_the_facts_codes_and_the_words(base, single):
    d = base["anomalies"].to_dict()
    assert d["facts"]["verdict"] == "no_trend_break" and d["facts"]["parameters"]["min_score"] == 3.0
    assert d["facts"]["method"]["ci"] == stats.METHODS["ci"]
    assert d["facts"]["least_favourable_throughput_step"]["step"] in d["verdict"]
    z = base["zerocopy"].to_dict()["facts"]
    assert (z["verdict"], z["mechanism_code"]) == ("mixed", "copied_on_delivery")
    assert base["zerocopy"].facts.caveats == [] and base["zerocopy"].caveats == []
    (once,) = single["zerocopy"].to_dict()["facts"]["caveats"]
    assert once == {"code": "single_repeat", "runs": 48} and single["zerocopy"].caveats[0].startswith(
        "Each configuration was measured once (48 runs)")


def test_unknown_question_lists_the_valid_ones(tmp_path):
    r = load_results(synth.write_results(tmp_path / "r", repeats=1))
    with pytest.raises(UsageError) as err:
        answer_all(r, ["cache", "caches"])
    assert "caches" in err.value.message and "one-copy-crossover" in err.value.message


# ------------------------------------------------------------------------------- CLI
@pytest.fixture
def netobs(capsys):
    """`netobs ARGS` in this process (stdout a pipe): its exit status and output."""
    def run(*args, check=True):
        p = cli(capsys, *args)
        if check:
            assert p.returncode == 0, p.stderr
        return p
    return run


def test_cli_explains_an_imported_study_csv_end_to_end(tmp_path, netobs):
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
    assert "one-copy-crossover" in text and "16384" in text and "For the whole run" in text and "zerocopy:" not in text


def test_cli_on_an_import_as_netobs_import_writes_it(tmp_path, netobs):
    d = synth.write_imported(tmp_path / "imp", synth.study_rows())
    out = json.loads(netobs("explain", str(d), "--json", "-q", "cache,threads").stdout)
    assert [a["question"] for a in out["answers"]] == ["cache", "threads"]
    assert out["answers"][0]["facts"]["largest_level"] == "L1"


def test_cli_errors_are_one_line_with_exit_2(tmp_path, netobs):
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
    store.add_point({"strategy": "one_copy", "msg_size": 4096, "threads": 1, "throughput_gbps": 2.0,
                     "latency_us": {"mean": 3.0}, "bytes_sent": 10**9, "window_s": 4.0})
    assert len(store.columns) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = load_results(tmp_path / "wide")
    assert len(res.runs) == 1 and "server_perf_task_clock" in res.runs


def test_a_crossover_of_unrepeated_points_says_so_in_its_headline(single, base):
    """Issue 23 item 4: a crossover that no repeat tested says so in the headline, whether it
    rests on one point or on several (each run once); one with repeats does not."""
    for key in ("one-copy-crossover", "zero-copy-crossover"):
        a = next(x for x in single.values() if x.key == key)
        if "first beats" in a.headline:
            assert "unrepeated point" in a.headline or "untested: one run per point" in a.headline, a.headline
        b = next(x for x in base.values() if x.key == key)
        assert "unrepeated" not in b.headline and "untested" not in b.headline, b.headline
