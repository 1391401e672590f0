"""Interventions that test a cause (issue 26 item 4): the table names real parameters and
hypotheses; pairs planted in a profiled store are found, judged in the direction they were
planted, ranked above the correlation-level judgements in the answers, one verdict per piece of
evidence; plan() proposes only the pairs the results lack. No root: planted data."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import profile_synth  # noqa: E402
from conftest import read_runs, write_runs  # noqa: E402

from netobs.analysis import accounting as acc  # noqa: E402
from netobs.analysis import hypotheses as hyp  # noqa: E402
from netobs.analysis.load import CONFIG, load_results  # noqa: E402
from netobs.analysis.questions import answer_all  # noqa: E402
from netobs.analysis.questions.prose import HYPOTHESIS_WORDS  # noqa: E402
from netobs.params import PARAMS  # noqa: E402
from netobs.refine import interventions as iv  # noqa: E402
from netobs.spec import RunSpec  # noqa: E402


# ----------------------------------------------------------------------------- the table
def test_every_row_names_a_real_hypothesis_parameter_and_measure():
    assert iv.TABLE
    for row in iv.TABLE:
        assert row.hypothesis in hyp.CATALOGUE and row.hypothesis in HYPOTHESIS_WORDS, row
        p = PARAMS.by_name[row.param]
        assert p.point and row.column in CONFIG, row
        if row.to not in iv.RULES:
            p.check(bool(row.to) if hasattr(p.kind, "WORDS") else row.to)   # a value the parameter takes
        else:
            assert row.param in ("threads", "sndbuf", "rcvbuf"), row   # the rules are for sizes and counts
        assert row.expect.startswith("less_") and row.role in ("client", "server", "both"), row
        assert row.only_where in ("", "oversubscribed") and row.words
    names = {(row.hypothesis, row.param, str(row.to)) for row in iv.TABLE}
    for needed in [("oversubscription", "placement", "split"), ("oversubscription", "threads", "fewer"),
                   ("scheduling", "placement", "same"), ("sndbuf_full", "sndbuf", "larger"),
                   ("kernel_copy", "recv", "trunc"), ("link_packets", "nodelay", "False"),
                   ("kernel_copy", "fields", "1")]:
        assert needed in names


def test_every_measure_reads_a_column_a_profiled_store_has(tmp_path):
    r = load_results(profile_synth.write_profile_results(tmp_path / "p", impls=("one_copy",), sizes=(4096,),
                                                         threads=(1,)))
    for row in iv.TABLE:
        roles = ("client", "server") if row.role == "both" else (row.role,)
        if row.measure in acc.NETWORK:   # (every netobs point has the link's counters; the synthetic store not)
            assert iv.measure_series(r.runs, row.measure, roles[0]).index.equals(r.runs.index)
            continue
        assert any(iv.measure_series(r.runs, row.measure, role).notna().any() for role in roles), row


# ----------------------------------------------------------------------------- planted pairs
def planted(tmp_path, change: dict, edit_base, edit_changed, threads=(1, 4)):
    """A profiled store (two_copy, one_copy x 2 sizes x `threads`, 3 repeats) whose every row is
    also measured again with `change` (column -> value): edit_base(row) plants the cause on the
    original rows, edit_changed(row) what the change did to them."""
    d = profile_synth.write_profile_results(tmp_path / "p", impls=("two_copy", "one_copy"), threads=threads,
                                            repeats=3)
    cols, rows = read_runs(d)
    cols += [c for c in change if c not in cols]
    out = []
    for row in rows:
        base = dict(row)
        edit_base(base)
        again = {**base, **{c: str(v) for c, v in change.items()}}
        edit_changed(again)
        out += [base, again]
    write_runs(d, cols, out)
    return load_results(d)


def _preempted(share):
    def edit(row):
        if row["threads"] == "4":
            row["work_client_preempted_s"] = repr(share * float(row["work_client_thread_s"]))
    return edit


def _faster(factor):
    def edit(row):
        if row["threads"] == "4":
            row["throughput_gbps"] = repr(factor * float(row["throughput_gbps"]))
            row["bytes_sent"] = repr(factor * float(row["bytes_sent"]))
    return edit


def _both(*edits):
    def edit(row):
        for e in edits:
            e(row)
    return edit


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    """Unpinned, 4 threads: half their time runnable, not running; pinned (split) the preempted
    share falls to 5% and throughput rises 30%."""
    return planted(tmp_path_factory.mktemp("pinned"), {"placement": "split"},
                   _both(_preempted(0.5), lambda row: row.update(placement="none")),
                   _both(_preempted(0.05), _faster(1.3)))


def test_a_planted_oversubscription_is_found_and_confirmed_by_the_placement_pair(pinned):
    found = iv.judge(pinned)
    placed = [j for j in found if j.numbers["intervention"] == "placement:split" and j.name == "oversubscription"]
    # the four 4-thread configurations (two strategies x two sizes); the 1-thread ones are not
    # oversubscribed, so the row does not apply there
    assert len(placed) == 4 and {j.numbers["base_point"].split("-")[2] for j in placed} == {"4"}
    for j in placed:
        assert j.source == "intervention" and j.name == "oversubscription"
        assert j.status == hyp.SUPPORTED, j.numbers
        assert j.numbers["removed"] == pytest.approx(0.9, abs=0.02) and j.numbers["role"] == "client"
        assert j.numbers["throughput_change"] == pytest.approx(0.3, abs=0.01)
        assert j.numbers["base_point"].endswith("-pnone") and j.numbers["p_value"] < 0.05
    # fewer threads (4 -> 1) at the unpinned points removes the planted preempted share too
    fewer = [j for j in found if j.numbers["intervention"] == "threads:fewer"]
    assert fewer and all(j.status == hyp.SUPPORTED and j.numbers["base_point"].endswith("-pnone") for j in fewer)
    assert iv.judge(pinned) is found   # once per loaded results


def test_the_experiment_is_ranked_above_the_correlation_and_said_so(pinned):
    answers = answer_all(pinned)
    shown = [a for a in answers if any(j.source == "intervention" for j in a.facts.hypotheses)]
    assert shown
    for a in shown:
        hs = a.facts.hypotheses
        first_exp = min(i for i, j in enumerate(hs) if j.source == "intervention")
        corr = [i for i, j in enumerate(hs) if j.source != "intervention"]
        assert all(first_exp < i for i in corr)
        n = len([j for j in hs if j.source == "intervention"])
        assert all("by experiment" in line for line in a.hypotheses[:n])   # the prose in the facts' order
        over = [i for i, j in enumerate(hs) if j.source == "intervention" and j.name == "oversubscription"]
        if over:
            line = a.hypotheses[over[0]]
            assert "removed 90% of the working threads' preempted time" in line
            assert "oversubscription confirmed by experiment" in line, line
            facts = a.facts.to_dict()["hypotheses"][over[0]]
            assert facts["source"] == "intervention" and facts["status"] == "supported"
    assert any(j.name == "oversubscription" for a in shown for j in a.facts.hypotheses if j.source == "intervention")
    # shown where the unpinned base was answered, not in the pinned part
    assert all("placement none" in a.shape for a in shown)
    # one verdict per piece of evidence across every answer
    seen = {}
    for a in answers:
        for j in a.facts.hypotheses:
            key = (j.name, j.scope)
            assert seen.setdefault(key, j.status) == j.status, key


def test_a_pair_an_answer_compares_itself_is_no_experiment_of_its_own(pinned):
    """The sweep's 4 threads against its 1 thread is the threads answer's own step, judged there:
    the fewer-threads pair of the same configurations is shown in no answer (one piece of
    evidence, one verdict), while the placement pairs, which no answer compares, are."""
    found = iv.judge(pinned)
    fewer = {id(j) for j in found if j.numbers["intervention"] == "threads:fewer"}
    split = {id(j) for j in found if j.numbers["intervention"] == "placement:split"}
    assert fewer and split
    shown = {id(j) for a in answer_all(pinned) for j in a.facts.hypotheses if j.source == "intervention"}
    assert not shown & fewer and split <= shown


def test_a_change_that_removes_nothing_refutes_and_a_rise_is_no_support(tmp_path):
    same = planted(tmp_path / "same", {"placement": "split"},
                   _both(_preempted(0.5), lambda row: row.update(placement="none")), _preempted(0.49))
    placed = [j for j in iv.judge(same) if j.name == "oversubscription" and j.numbers["intervention"] == "placement:split"]
    assert placed and all(j.status == hyp.CONTRADICTED for j in placed)
    rose = planted(tmp_path / "rose", {"placement": "split"},
                   _both(_preempted(0.3), lambda row: row.update(placement="none")), _preempted(0.6))
    placed = [j for j in iv.judge(rose) if j.name == "oversubscription" and j.numbers["intervention"] == "placement:split"]
    assert placed and all(j.status == hyp.CONTRADICTED and j.numbers["removed"] < 0 for j in placed)
    lines = [line for a in answer_all(rose) for j, line in zip(a.facts.hypotheses, a.hypotheses)
             if j.source == "intervention" and j.name == "oversubscription"]
    assert lines and all("did not lower" in line and "oversubscription refuted by experiment" in line
                         for line in lines if "placement split" in line)


def test_a_larger_send_buffer_that_ends_the_blocking_confirms_sndbuf_full(tmp_path):
    def blocked(row):
        row["sndbuf_bytes"] = "16384"
        row["work_client_sndbuf_full_s"] = repr(0.6 * float(row["work_client_thread_s"]))

    def freed(row):
        row["sndbuf_bytes"] = str(8 << 20)
        row["work_client_sndbuf_full_s"] = repr(0.06 * float(row["work_client_thread_s"]))

    r = planted(tmp_path, {"sndbuf": 4 << 20}, blocked, freed, threads=(1,))
    found = [j for j in iv.judge(r) if j.name == "sndbuf_full"]
    assert len(found) == 4 and all(j.status == hyp.SUPPORTED for j in found)
    assert all(j.numbers["granted"] == [16384, 8 << 20] and j.numbers["base_point"].count("-sb") == 0 for j in found)
    assert all(j.numbers["changed_point"].endswith("-sb4194304") for j in found)


def test_without_a_profile_throughput_decides_and_fewer_threads_is_not_judged(tmp_path):
    d = profile_synth.write_profile_results(tmp_path / "p", impls=("one_copy",), threads=(1, 4), repeats=3)
    cols, rows = read_runs(d)
    prof = [c for c in cols if c.startswith(("prof_", "work_", "wait_"))]
    out = []
    for row in rows:
        row.update({c: "" for c in prof}, placement="none")
        out += [row, {**row, "placement": "split",
                      "throughput_gbps": repr(1.5 * float(row["throughput_gbps"]))}]
    write_runs(d, cols, out)
    r = load_results(d)
    found = iv.judge(r)
    # the synthetic host has more cores than 2 x 4 busy threads: nothing is oversubscribed
    assert r.host_cores and r.host_cores >= 8 and not [j for j in found if j.name == "oversubscription"]
    sched = [j for j in found if j.name == "scheduling"]
    assert not sched   # (the pair is none -> split: same is what removes cross-CPU wake-ups)


def test_plan_proposes_the_missing_pair_from_a_complete_point_and_not_a_held_one(tmp_path, pinned):
    d = profile_synth.write_profile_results(tmp_path / "p", impls=("two_copy", "one_copy"), threads=(1, 4), repeats=2)
    cols, rows = read_runs(d)
    for row in rows:   # 4 threads preempted half their time and slower than 1: a loss to explain
        row["placement"] = "none"
        _both(_preempted(0.5), _faster(0.3))(row)
    write_runs(d, cols, rows)
    r = load_results(d)
    plans = iv.plan(r)
    over = [p for p in plans if p["hypothesis"] == "oversubscription"]
    assert over, [p["hypothesis"] for p in plans]
    assert json.loads(json.dumps(plans)) == plans   # data refine can print and store
    for p in over:
        assert set(p) >= {"hypothesis", "scope", "base", "change", "expect", "decides"}
        point = RunSpec(**{**p["base"], "topology": "loopback"})   # a complete point netobs can run
        assert point.placement == "none" and point.threads == 4 and p["repeats"] == 2
        assert p["change"] in ({"placement": "split"}, {"threads": 2}) or "threads" in p["change"]
        assert p["expect"] == "less_preempted"
        assert set(p["base"]) <= {q.name for q in PARAMS if q.point}
    # where the results hold the pair already, nothing is planned for it
    assert not [p for p in iv.plan(pinned) if p["change"] == {"placement": "split"}
                and p["base"]["placement"] == "none" and p["base"]["threads"] == 4]


def test_a_store_without_the_buffer_columns_reads_as_the_kernels_defaults(tmp_path):
    d = profile_synth.write_profile_results(tmp_path / "p", impls=("one_copy",), sizes=(4096,), threads=(1,))
    cols, rows = read_runs(d)
    cols = [c for c in cols if c not in ("sndbuf", "rcvbuf", "sndbuf_bytes", "rcvbuf_bytes", "recv")]
    write_runs(d, cols, [{c: row[c] for c in cols} for row in rows])
    r = load_results(d)
    assert (r.runs["sndbuf"] == 0).all() and (r.runs["rcvbuf"] == 0).all() and (r.runs["recv"] == "copy").all()
    assert not [n for n in r.notes if "no row" in n]   # the points' names are what they were
    assert acc.measured(r)
    # the columns as a sweep writes them: 0 is the kernel's default (outside the limits, allowed)
    write_runs(d, cols + ["sndbuf", "rcvbuf", "sndbuf_bytes"], [{**{c: row[c] for c in cols}, "sndbuf": "0", "rcvbuf": "0",
                                                              "sndbuf_bytes": "16384"} for row in rows])
    r = load_results(d)
    assert len(r.runs) == len(rows) and (r.runs["sndbuf"] == 0).all() and not r.notes


def _gaining(tmp_path, share):
    """4 threads faster than 1 (a gain: the step's correlation contradicts oversubscription), their
    client threads preempted `share` of their time."""
    d = profile_synth.write_profile_results(tmp_path, impls=("two_copy", "one_copy"), threads=(1, 4), repeats=2)
    cols, rows = read_runs(d)
    for row in rows:
        row["placement"] = "none"
        _both(_preempted(share), _faster(1.5))(row)
    write_runs(d, cols, rows)
    return load_results(d)


def test_a_contradicted_step_still_plans_the_pair_where_the_base_is_measured_oversubscribed(tmp_path):
    r = _gaining(tmp_path / "over", 0.5)
    threads = [a for a in answer_all(r) if a.question == "threads"][0]
    step = [j for j in threads.facts.hypotheses if j.name == "oversubscription"]
    assert step and all(j.status == hyp.CONTRADICTED for j in step)     # a gain: the step is not its doing
    placed = [p for p in iv.plan(r) if p["hypothesis"] == "oversubscription" and p["change"] == {"placement": "split"}]
    assert placed and all(p["base"]["threads"] == 4 and p["scope"]["status"] == hyp.CONTRADICTED for p in placed)
    # not oversubscribed by measurement (preempted below accounting.PREEMPTED): nothing to test
    calm = _gaining(tmp_path / "calm", acc.PREEMPTED / 4)
    assert not [p for p in iv.plan(calm) if p["hypothesis"] == "oversubscription"]
