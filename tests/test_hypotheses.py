"""Answers that name causes (issue 14): planted causes are named and contradicted ones are not;
one regression test per defect rule; metamorphic tests; the explain command's layout.

Synthetic results (tests/synth.py, tests/profile_synth.py) plant a known cause; no root needed.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli, fixture_answers

sys.path.insert(0, str(Path(__file__).parent))
import profile_synth  # noqa: E402
import synth  # noqa: E402

from netobs.analysis import hypotheses as hyp  # noqa: E402
from netobs.analysis import stats  # noqa: E402
from netobs.analysis.load import load_results  # noqa: E402
from netobs.analysis.questions import QUESTIONS, answer_all, run_caveats  # noqa: E402
from netobs.analysis.questions.prose import HYPOTHESIS_WORDS  # noqa: E402
from netobs.fmt import share  # noqa: E402

ROOT = REPO


def answers(path) -> dict:
    return {a.question: a for a in answer_all(load_results(path))}


def words(a) -> str:
    return " ".join([a.headline] + a.reasons + a.hypotheses + a.own_caveats)


def status(a, name):
    return next((j.status for j in a.facts.hypotheses if j.name == name), None)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return answers(synth.write_results(tmp_path_factory.mktemp("base")))


# ----------------------------------------------------------------------------- planted truths
@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    """two_copy alone dips 30% at 4096 B x 2 threads: the others hold their trend."""
    return answers(synth.write_results(tmp_path_factory.mktemp("weak"), gbps_factor={("two_copy", 4096, 2): 0.7}))


def test_a_weak_baseline_point_is_named_and_every_win_on_it_says_so(weak, base):
    a = weak["anomalies"]
    (first,) = [x for x in a.facts.reasons if x.code == "weak_baseline_point"]
    assert (first.numbers["msg_size"], first.numbers["threads"], first.numbers["implementation"]) == \
        (4096, 2, "two_copy")
    assert "weak baseline point" in a.reasons[0] and "4096 B x 2 threads" in a.headline
    assert "a property of the system" not in words(a)           # not system-wide
    one = weak["one-copy-crossover"]
    assert "weak two_copy point" in one.headline and status(one, "weak_baseline") == "supported"
    assert one.facts.weak_baseline[0]["msg_size"] == 4096
    # without the dip nothing is called weak
    assert status(base["one-copy-crossover"], "weak_baseline") == "contradicted"
    assert "weak" not in base["one-copy-crossover"].headline and "weak" not in base["anomalies"].headline


def test_a_collapse_shared_by_every_strategy_is_system_wide(tmp_path):
    a = answers(synth.write_results(tmp_path / "c", gbps_factor={(i, 16384, 4): 0.5 for i in synth.IMPLS},
                                    cores=64))["anomalies"]
    lead = a.facts.incidents[0]
    assert lead["code"] == "system_wide_break" and (lead["msg_size"], lead["threads"]) == (16384, 4)
    assert set(lead["strategies"]) == set(synth.IMPLS)
    assert "every strategy" in a.headline and "16384 B x 4 threads" in a.headline
    assert "a property of the system at this configuration, not of a strategy" in a.reasons[0]
    assert "weak baseline" not in words(a).replace("a weak baseline point: contradicted", "")
    assert status(a, "system_wide") == "supported" and status(a, "oversubscription") == "contradicted"
    assert "oversubscription" not in a.headline          # 8 busy threads on 64 cores


def test_blocking_on_a_full_send_buffer_is_named_where_planted(tmp_path):
    d = profile_synth.write_profile_results(tmp_path / "p", sizes=(1024, 4096, 16384, 65536), threads=(1, 2, 4),
                                            repeats=3, gbps_factor={("zero_copy", 16384, 2): 0.5})
    col, total = "work_client_sndbuf_full_s", "work_client_thread_s"

    def plant(row):
        if (row["implementation"], row["msg_size"], row["threads"]) == ("zero_copy", "16384", "2"):
            extra = float(row[col]) * 5
            row[col], row[total] = repr(float(row[col]) + extra), repr(float(row[total]) + extra)
    a = answers(synth.edit_runs(d, plant))["anomalies"]
    lead = a.facts.incidents[0]
    assert (lead["implementation"], lead["msg_size"], lead["threads"]) == ("zero_copy", 16384, 2)
    assert "sndbuf_full" in lead["supported"] and "blocking on a full send buffer" in a.headline
    assert status(a, "oversubscription") == "contradicted" and "oversubscription" not in a.headline
    assert status(a, "system_wide") == "contradicted"


def test_the_local_delivery_copy_is_named_only_where_the_kernel_reported_it(tmp_path, base):
    z = base["zerocopy"]
    assert status(z, "deferred_copy_local") == "supported" and "deferred copy on local delivery" in z.headline
    nic = answers(synth.write_results(tmp_path / "nic", copied_fraction=0.0))["zerocopy"]
    assert status(nic, "deferred_copy_local") == "contradicted" and "deferred copy" not in nic.headline
    imp = answers(synth.write_imported(tmp_path / "imp", synth.study_rows()))["zerocopy"]
    assert status(imp, "deferred_copy_local") == "not_measured"
    assert any("deferred copy" in h and "would decide" in h for h in imp.hypotheses)


def test_with_profiles_zerocopy_says_where_the_time_went_and_cache_uses_a_labelled_proxy(tmp_path):
    a = answers(profile_synth.write_profile_results(tmp_path / "p", hw_counters=False))
    z = a["zerocopy"]
    text = next(t for t, x in zip(z.reasons, z.facts.reasons) if x.code == "accounting")
    assert "CPU-s/GB more than two_copy" in text and "pinning" in text and "notifications" in text
    assert "pinning" in z.headline      # the largest accounted cause, with its share
    assert status(z, "page_pinning") == "supported" and status(z, "notification_cost") == "supported"
    c = a["cache"]
    assert "as a proxy" in c.headline and "Proxy, not a miss count" in c.reasons[0]
    pinned = c.facts.copy_cpu_s_per_gb
    assert pinned["two_copy"] > pinned["one_copy"] > pinned["zero_copy"]   # user + kernel copy planted
    t = a["threads"]
    # the two shares that moved most are said; every one is in the facts (--json)
    assert any("working threads' time" in r for r in t.reasons)
    assert "client_sndbuf_full" in t.facts_dict()["waits"]


# ----------------------------------------------------------------------------- one test per defect rule
def test_sign_tests_count_independent_units_only(base):
    """Every strategy at one configuration shares its two_copy run: the units are configurations."""
    f = base["cache"].facts_dict()
    assert f["pairs"] == f["configurations"] == 16          # not 2 strategies x 16 = 32
    assert f["sign_test_p"] == pytest.approx(stats.sign_test(16, 0))
    assert "16 of 16 configurations" in base["cache"].verdict


def test_relative_and_absolute_are_both_stated_when_they_disagree(tmp_path, base):
    c = answers(synth.write_results(tmp_path / "r", l1_reduction=0.05, llc_reduction=0.5))["cache"]
    f = c.facts_dict()
    assert (f["largest_level"], f["largest_absolute_level"]) == ("LLC", "L1")
    assert "relative reduction is at LLC" in c.headline and "in absolute misses per KiB L1 fell most" in c.headline
    assert any(x.code == "absolute_disagrees" for x in c.facts.reasons)
    assert "absolute" not in base["cache"].headline            # they agree there: nothing to add


def test_a_median_of_ratios_leaves_out_tiny_baselines(tmp_path):
    assert list(stats.guarded_ratios([0.0025, 4.0, 4.2, 3.9], 0.01)) == [False, True, True, True]
    d = synth.write_results(tmp_path / "t")

    def tiny(row):     # two_copy's LLC at 0.0025 misses/KiB, the others' at 0.2: a x80 "rise"
        if row.get("status") != "ok":
            return
        k = 0.000625 if row["implementation"] == "two_copy" else 0.05
        for col in ("llc_cache_misses", "perf_llc_load_misses"):
            if row.get(col):
                row[col] = repr(float(row[col]) * k)
    c = answers(synth.edit_runs(d, tiny))["cache"]
    f = c.facts_dict()
    assert f["excluded_tiny"]["LLC"] == 32 and f["pooled"]["LLC"]["n"] == 0
    assert f["largest_level"] == "L1"
    assert any(x.code == "tiny_baseline" for x in c.facts.reasons) and "near-zero denominators" in c.verdict


def test_no_claim_by_construction_on_imported_data(tmp_path, base):
    for a in answers(synth.write_imported(tmp_path / "imp", synth.study_rows())).values():
        assert "by construction" not in words(a) and "its code" not in words(a), a.question
    # on netobs's own runs it is said, and only because cycles per byte fell with the misses
    assert "its code" in base["cache"].verdict
    assert all(v > 0 for v in base["cache"].facts_dict()["cycles_per_byte_reduction_pct"].values())


def test_numbers_carry_their_point_size_and_threads(tmp_path, base):
    never = answers(synth.write_results(tmp_path / "n", crossover={"one_copy": 16384, "zero_copy": None}))
    z = never["zero-copy-crossover"]
    assert re.search(r"closest: [-+][\d.]+% at \d+ B x \d+ threads?", z.headline)
    text = " ".join(words(a) for a in list(never.values()) + list(base.values()))
    for m in re.finditer(r"(closest was|closest:|largest loss was|largest win) [-+][\d.]+% at \d+ B(.{0,4})", text):
        assert m.group(2).startswith(" x "), m.group(0)


def test_an_assumed_number_says_assumed_in_its_sentence(tmp_path):
    a = answers(synth.write_results(tmp_path / "s", repeats=1, gbps_factor={("one_copy", 16384, 4): 0.5}))
    sentences = [s for a_ in a.values() for t in a_.reasons for s in re.split(r"(?<=\.) ", t)]
    noisy = [s for s in sentences if "noise" in s and "standard errors" in s]
    assert noisy and all("assumed" in s for s in noisy)
    measured = answers(synth.write_results(tmp_path / "m", gbps_factor={("one_copy", 16384, 4): 0.5}))
    assert all("assumed" not in t for t in measured["anomalies"].reasons)


def test_counters_are_named_as_the_data_names_them(tmp_path):
    a = answers(synth.write_imported(tmp_path / "imp", synth.study_rows(hw_counters=False)))
    text = " ".join(words(x) + " ".join(x.caveats) for x in a.values())
    for event in ("L1-dcache-load-misses", "LLC-load-misses", "cpu-cycles"):
        assert event not in text
    assert "l1_cache_misses" in text


def test_quotes_are_verbatim(base):
    z = base["zerocopy"].verdict
    assert '"MSG_ZEROCOPY is generally only effective at writes over around 10 KB"' in z
    assert "real NIC" not in z


# ----------------------------------------------------------------------------- metamorphic
def test_doubling_every_duration_changes_no_verdict(tmp_path):
    kw = dict(gbps_factor={(i, 16384, 4): 0.5 for i in synth.IMPLS}, cores=4)
    a = synth.write_results(tmp_path / "a", **kw)
    every = {(i, s, t, r): 2.0 for i in synth.IMPLS for s in synth.SIZES for t in synth.THREADS for r in range(3)}
    b = synth.write_results(tmp_path / "b", scale=every, **kw)
    for x, y in zip(answer_all(load_results(a)), answer_all(load_results(b))):
        assert (x.facts.code, x.headline) == (y.facts.code, y.headline), x.question
        assert [(j.name, j.status) for j in x.facts.hypotheses] == [(j.name, j.status) for j in y.facts.hypotheses]
        assert [r.code for r in x.facts.reasons] == [r.code for r in y.facts.reasons]


def test_renaming_strategies_changes_only_names(tmp_path):
    kw = dict(gbps_factor={(i, 16384, 4): 0.5 for i in synth.IMPLS}, cores=64)
    names = {"two_copy": "a_two", "one_copy": "b_one", "zero_copy": "c_zero"}   # same order
    plain = synth.write_results(tmp_path / "plain", **kw)
    renamed = synth.rename_strategies(synth.write_results(tmp_path / "renamed", **kw), names)
    for q in ("anomalies", "threads"):
        x, y = QUESTIONS[q].answer(load_results(plain)), QUESTIONS[q].answer(load_results(renamed))
        back = words(y)
        for old, new in names.items():
            back = back.replace(new, old)
        assert back == words(x), q


# ----------------------------------------------------------------------------- output
@pytest.fixture
def netobs(capsys):
    """`netobs ARGS` (in this process, stdout a pipe): what it printed; it must succeed."""
    def run(*args):
        p = cli(capsys, *args)
        assert p.returncode == 0, p.stderr
        return p.stdout
    return run


def test_explain_of_a_48_point_sweep_fits_in_120_lines_and_says_run_caveats_once(tmp_path, netobs):
    d = synth.write_results(tmp_path / "s", repeats=1, cores=4)       # 3 x 4 x 4 = 48 points
    assert len(load_results(d).runs) == 48
    text = netobs("explain", str(d))
    assert len(text.splitlines()) <= 120
    assert text.count("Each configuration was measured once") == 1 and text.count("Oversubscribed:") == 1
    assert text.count("Hypotheses:") >= 4


def test_piped_tables_keep_every_column(tmp_path, netobs):
    d = synth.write_results(tmp_path / "s", repeats=2, sizes=(1024, 65536), threads=(1, 2))
    a = QUESTIONS["cache"].answer(load_results(d))
    text = netobs("explain", str(d), "-q", "cache")      # stdout is a pipe here, not a terminal
    header = next(line for line in text.splitlines() if line.lstrip().startswith("implementation"))
    for col in a.key_columns:
        assert col.replace("_", " ") in header, col
    assert "…" not in text


def test_json_carries_headline_reasons_with_numbers_and_sources_and_hypotheses(tmp_path, netobs):
    d = synth.write_results(tmp_path / "s", gbps_factor={("two_copy", 4096, 2): 0.7})
    out = json.loads(netobs("explain", str(d), "--json"))
    assert out["caveats"] == [] or all("code" in c and "text" in c for c in out["caveats"])
    for a in out["answers"]:
        assert a["headline"] and a["verdict"].startswith(a["headline"])
        assert len(a["headline"].split()) <= 30, a["headline"]
        for r in a["reasons"]:
            assert r["text"] and r["source"] in ("worker", "perf", "trace", "profile", "netstat", "manifest",
                                                 "import") and isinstance(r["numbers"], dict)
        for h in a["hypotheses"]:
            assert h["status"] in ("supported", "contradicted", "not_measured") and h["text"]
    anomalies = next(a for a in out["answers"] if a["question"] == "anomalies")
    assert anomalies["reasons"][0]["code"] == "weak_baseline_point"
    assert anomalies["reasons"][0]["numbers"]["msg_size"] == 4096


def test_the_catalogue_is_data_and_every_hypothesis_has_words():
    from netobs.analysis.questions import prose
    assert set(hyp.CATALOGUE) <= set(prose.HYPOTHESIS_WORDS) and set(hyp.CATALOGUE) <= set(prose.WOULD_DECIDE)
    assert all(callable(h.judge) for h in hyp.CATALOGUE.values())


def test_run_caveats_are_said_once(tmp_path):
    got = answer_all(load_results(synth.write_results(tmp_path / "s", repeats=1, cores=4)))
    codes = [c["code"] for c in run_caveats(got)]
    assert codes.count("single_repeat") == 1 and "oversubscribed" in codes
    assert all("measured once" not in c for a in got for c in a.own_caveats)


# ---- the receiver on another host (issue 16 item 6) and io_uring_zc alone (issue 15) -------------
def _zc(path):
    return answers(path)["zerocopy"]


def test_remote_tests_the_documented_break_even_and_reports_the_share_not_copied(tmp_path):
    d = synth.write_results(tmp_path / "r", topology="remote", copied_fraction=0.0,
                            crossover={"one_copy": 16384, "zero_copy": 16384})
    a = _zc(d)
    assert status(a, "break_even_10kb") == "supported"
    j = next(j for j in a.facts.hypotheses if j.name == "break_even_10kb")
    assert j.numbers["below"] == {"won": 0, "configurations": 8} and j.numbers["above"]["won"] == 8
    assert "the documented 10 KB break-even: supported" in a.headline
    text = words(a)
    assert "100% of zero-copy sends did avoid the copy on the way to the other host" in text
    assert "Tested on another host" in text and "Context, not evidence" not in text
    assert status(a, "deferred_copy_remote") == "contradicted" and status(a, "deferred_copy_local") is None


def test_remote_break_even_is_contradicted_by_wins_below_10kb(tmp_path):
    d = synth.write_results(tmp_path / "r", topology="remote", copied_fraction=0.0,
                            crossover={"one_copy": 16384, "zero_copy": 4096})
    a = _zc(d)
    assert status(a, "break_even_10kb") == "contradicted"
    assert "the documented 10 KB break-even: contradicted" in a.headline


def test_remote_pages_copied_anyway_are_not_called_local_delivery(tmp_path):
    a = _zc(synth.write_results(tmp_path / "r", topology="remote", copied_fraction=1.0))
    assert status(a, "deferred_copy_remote") == "supported"
    text = words(a)
    assert "although the receiver was another host: 0% went out by page reference" in text
    assert "same host" not in text


def test_local_topologies_keep_the_break_even_as_context_only(tmp_path):
    a = _zc(synth.write_results(tmp_path / "r", copied_fraction=1.0, crossover={"one_copy": 16384, "zero_copy": 16384}))
    assert status(a, "break_even_10kb") is None and "Context, not evidence" in words(a)
    assert status(a, "deferred_copy_local") == "supported"


def test_io_uring_zc_alone_is_answered_against_its_own_baseline(tmp_path):
    d = synth.rename_strategies(synth.write_results(tmp_path / "r", copied_fraction=1.0),
                                {"zero_copy": "io_uring_zc", "two_copy": "io_uring"})
    a = _zc(d)
    assert a.facts.code != "no_zero_copy" and a.facts.sender == "io_uring_zc"
    assert a.facts.baselines == ["io_uring", "one_copy"]
    assert a.headline.startswith("io_uring_zc ") and "IORING_NOTIF_USAGE_ZC_COPIED" in words(a)
    assert "zero_copy" not in a.headline


# ---- the observer's own cost, per point, from the profile (issue 18 item 1) ------------------------
def _with_observer(path, shares: dict):
    def edit(row):
        key = (row["implementation"], int(row["msg_size"]), int(row["threads"]))
        v = shares.get(key, 0.004)
        row["prof_client_observer"] = v
        row["prof_client_observer_cpu_s_per_gb"] = v * 2.0
    return synth.edit_runs(path, edit)


def test_an_observer_share_over_one_percent_is_said_once_for_the_run(tmp_path):
    d = _with_observer(profile_synth.write_profile_results(tmp_path / "p"), {("zero_copy", 4096, 2): 0.031})
    run = run_caveats(answer_all(load_results(d)))
    obs = [c for c in run if c["code"] == "observer_cost"]
    assert len(obs) == 1 and list(obs[0]["roles"]) == ["client"]
    v = obs[0]["roles"]["client"]
    assert v["max"] == pytest.approx(0.031) and v["at"] == {"implementation": "zero_copy", "msg_size": 4096, "threads": 2}
    assert v["median"] == pytest.approx(0.004)
    assert "up to 3.1% at zero_copy 4096 B x 2 threads" in obs[0]["text"] and "[profile]" in obs[0]["text"]


def test_an_observer_share_within_one_percent_is_not_a_caveat(tmp_path):
    d = _with_observer(profile_synth.write_profile_results(tmp_path / "p"), {})
    assert not [c for c in run_caveats(answer_all(load_results(d))) if c["code"] == "observer_cost"]


def test_a_traced_run_without_profile_says_the_bench_figure_is_assumed(tmp_path):
    d = synth.write_results(tmp_path / "t")
    synth.edit_manifest(d, lambda m: m.update(observer_cost={
        "source": "bench", "measured_at": "2026-12-02T05:00:00Z", "same_host": True, "topology": "netns",
        "ns_per_event": 200.0, "ci": [100.0, 300.0]}))
    run = [c for c in run_caveats(answer_all(load_results(d))) if c["code"] == "observer_cost_assumed"]
    assert len(run) == 1 and run[0]["known"] and run[0]["share"] > 0
    lo, hi = run[0]["share_ci"]
    assert lo == pytest.approx(run[0]["share"] / 2) and hi == pytest.approx(run[0]["share"] * 1.5)
    assert "assumed from the bench" in run[0]["text"] and "could not tell" not in run[0]["text"]
    # an interval through zero: said so; no figure: unknown, with the reason
    synth.edit_manifest(d, lambda m: m["observer_cost"].update(ns_per_event=-50.0, ci=[-300.0, 200.0]))
    text = next(c["text"] for c in run_caveats(answer_all(load_results(d))) if c["code"] == "observer_cost_assumed")
    assert "could not tell that cost from its noise" in text and "bounds it at" in text and "-" not in text.split("bounds it at")[1]
    synth.edit_manifest(d, lambda m: m.update(observer_cost={"source": None, "ns_per_event": None, "ci": None,
                                                             "reason": "no bench figure at /x"}))
    text = next(c["text"] for c in run_caveats(answer_all(load_results(d))) if c["code"] == "observer_cost_assumed")
    assert "not known" in text and "no bench figure at /x" in text


@pytest.mark.parametrize("name", ["sweep-netns", "synth-vm", "synth-anomaly", "import-study"])
def test_every_headline_is_one_sentence_of_at_most_30_words(name):
    d = ROOT / "tests" / "fixtures" / "golden" / name
    for a in fixture_answers(d):
        assert len(a.headline.split()) <= 30, a.headline
        assert a.headline.endswith(".") and a.headline.count(". ") == 0, a.headline


def test_a_remote_with_this_hosts_boot_id_is_a_local_receiver(tmp_path):
    d = synth.write_results(tmp_path / "r", topology="remote", copied_fraction=1.0,
                            crossover={"one_copy": 16384, "zero_copy": 16384})
    synth.edit_manifest(d, lambda m: m.update(host={**(m.get("host") or {}), "boot_id": "b-1"},
                                              remote={"boot_id": "b-1"}))
    a = _zc(d)
    assert a.facts.receiver_local and status(a, "break_even_10kb") is None
    assert status(a, "deferred_copy_local") == "supported" and "on this kernel" in words(a)
    synth.edit_manifest(d, lambda m: m.update(remote={"boot_id": "b-2"}))   # another kernel
    a = _zc(d)
    assert not a.facts.receiver_local and status(a, "deferred_copy_remote") == "supported"
    assert status(a, "break_even_10kb") == "not_measured" and "not testable" in words(a)


# ----------------------------------------------------------------------------- review of the demo sweep
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """At 4096 B x 2 threads two_copy and zero_copy collapse while one_copy jumps (its latency
    falls: a latency inversion), and one_copy's latency falls further at 65536 B x 2 threads:
    every strategy broke a trend at 4096 B x 2 threads, but not the same way."""
    return answers(profile_synth.write_profile_results(
        tmp_path_factory.mktemp("mixed"), gbps_factor={("two_copy", 4096, 2): 0.3, ("zero_copy", 4096, 2): 0.3,
                                                       ("one_copy", 4096, 2): 2.5, ("one_copy", 65536, 2): 6}))


def test_a_break_is_system_wide_only_where_its_judgement_says_so(mixed):
    a = mixed["anomalies"]
    for i in a.facts.incidents:
        sw = next(j for j in i["judgements"] if j.name == "system_wide")
        assert (i["code"] == "system_wide_break") == (sw.status == "supported"), (i["code"], sw.status)
    assert "a property of the system at this configuration" not in words(a)


def test_the_heaviest_trend_break_is_the_table_s_first(mixed):
    a = mixed["anomalies"]
    first = min((x for x in a.facts.anomalies if x.code == "trend_break"), key=lambda x: x.rank)
    lead = a.facts.incidents[0]
    assert lead["score"] == first.score and (lead["msg_size"], lead["threads"]) == (first.msg_size, first.threads)
    assert f"{first.msg_size} B x {first.threads} threads" in a.headline and "latency" in a.headline


def test_a_weak_baseline_point_without_a_trend_is_not_measured(mixed):
    # two sizes and two thread counts: every point is at the end of its axes, no trend to sit off
    for q in ("one-copy-crossover", "zero-copy-crossover"):
        assert status(mixed[q], "weak_baseline") == "not_measured"
        assert "baseline on its trend" not in words(mixed[q])


def test_the_threads_table_s_oversubscription_is_the_measured_one_where_profiled(tmp_path):
    # 2 cores: 2 threads would be assumed oversubscribed (4 busy threads); the profile says the
    # working threads were preempted a few percent of their time: not oversubscribed
    t = answers(profile_synth.write_profile_results(tmp_path / "p", cores=2))["threads"]
    ev = t.facts.evidence
    assert ev["bottleneck"].notna().all()
    assert list(ev["oversubscribed"]) == list(ev["bottleneck"] == "oversubscribed")
    assert not ev[ev.threads == 2]["oversubscribed"].any()


def test_a_thread_step_is_judged_in_the_direction_its_headline_states(tmp_path):
    # 4 of 6 series fall from 1 to 2 threads, 2 rise 4x: the median of the ratios (the headline's
    # RATIO_AGGREGATE) is a loss while the mean over configurations rose
    f = {(i, s, 2): 0.55 for i in ("two_copy", "one_copy", "zero_copy") for s in (4096, 65536)}
    f[("one_copy", 65536, 2)] = f[("zero_copy", 65536, 2)] = 4.0
    t = answers(profile_synth.write_profile_results(tmp_path / "p", gbps_factor=f))["threads"]
    assert t.facts.ratio_max_over_min_threads["throughput_gbps"]["median"] < 1
    assert "changed x0." in t.headline
    directions = {j.numbers.get("direction") for j in t.facts.hypotheses} - {None}
    assert directions == {"loss"}, directions
    assert "a gain: only a fall explains it" not in words(t)


def test_a_trend_break_is_accounted_by_every_mechanism_and_its_headline_names_the_largest(mixed):
    a = mixed["anomalies"]
    judged = {j.name for j in a.facts.incidents[0]["judgements"]}
    # the TCP send path, softirq, ... all judged (the local-delivery copy applies to zero-copy only)
    assert set(hyp.MECHANISM_NAMES) - {"deferred_copy_local"} <= judged
    sup = sorted((j for j in a.facts.incidents[0]["judgements"] if j.name in hyp.MECHANISM_NAMES
                  and j.status == "supported" and j.numbers.get("role") == "both"), key=lambda j: -j.numbers["share"])
    assert sup, "the planted data's break has accounted causes"
    top = sup[0]
    words_of_top = HYPOTHESIS_WORDS[top.name][0]
    assert f"{words_of_top} {share(top.numbers['share'])}" in a.headline
    assert f"{words_of_top} {share(top.numbers['share'])}" in a.reasons[1]
