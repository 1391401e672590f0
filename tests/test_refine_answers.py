"""What the answers say of a refined directory (issue 26), on planted data, without root:

- the sequential looks are paid for: a difference significant at 0.05 but not at the refinement
  rule's alpha per look is significant before the directory is refined and not after
  (netobs.refine.rule.answers_alpha), and the answers state the level they tested at;
- the threads answer gives where throughput stops rising (netobs.refine.plateau.answered), the
  bracket and the steps that say so, from the stored points, once the directory was refined.
"""
from __future__ import annotations

import numpy as np
import pytest

import synth
from conftest import read_runs, write_runs
from netobs.analysis import stats
from netobs.analysis.load import load_results
from netobs.analysis.questions import answer_all, common, crossover, threads
from netobs.refine import plateau
from netobs.refine.rule import Rule, answers_alpha
from netobs.store import ResultsDir

SIZE = 65536


def _plant(path, gbps: dict):
    """Rewrite each row's throughput: gbps[(impl, threads)] is the list of its repeats' values."""
    cols, rows = read_runs(path)
    for row in rows:
        row["throughput_gbps"] = repr(gbps[(row["implementation"], int(row["threads"]))][int(row["repeat"])])
    write_runs(path, cols, rows)
    return path


def _refined(path, rule: Rule):
    """The manifest records a refinement round (as `netobs refine` does) with `rule`."""
    store = ResultsDir.open_for_resume(path)
    try:
        store.add_refinement({"id": "planted-1", "refinement": "planted", "rule": rule.to_dict(), "planned": []})
    finally:
        store.close()


def test_the_alpha_is_the_rules_per_look_one_once_refined_and_never_before():
    assert answers_alpha({}) == stats.ALPHA
    assert answers_alpha({"refinement": []}) == stats.ALPHA
    rule = Rule(max_repeats=5)
    assert answers_alpha({"refinement": [{"rule": rule.to_dict()}]}) == pytest.approx(0.05 / 4)
    two = [{"rule": Rule(max_repeats=3).to_dict()}, {"rule": Rule(max_repeats=8).to_dict()}]
    assert answers_alpha({"refinement": two}) == pytest.approx(0.05 / 7)     # the smallest recorded


def test_a_difference_significant_at_alpha_but_not_per_look_is_not_called_significant_after_refining(tmp_path):
    base = [10.0, 10.3, 9.7]
    ahead = [b + 0.8 + e for b, e in zip(base, (0.2, -0.2, 0.0))]
    d = synth.write_results(tmp_path / "p", impls=("two_copy", "one_copy"), sizes=(SIZE,), threads=(1,), repeats=3)
    _plant(d, {("two_copy", 1): base, ("one_copy", 1): ahead})
    _, p = stats.welch(np.array(ahead), np.array(base))
    rule = Rule()
    assert rule.alpha_per_look <= p < stats.ALPHA, p          # the planted case: between the two levels

    before = load_results(d)
    row = common.vs(before, "throughput_gbps", "one_copy", "two_copy").iloc[0]
    assert row.p_value == pytest.approx(p) and bool(row.significant) is True
    f = crossover.compute(before, "one_copy")
    assert f.by_threads[1].crossover_size == SIZE

    _refined(d, rule)
    after = load_results(d)
    row = common.vs(after, "throughput_gbps", "one_copy", "two_copy").iloc[0]
    assert row.p_value == pytest.approx(p) and bool(row.significant) is False
    (a,) = [a for a in answer_all(after, ["one-copy-crossover"])]
    assert a.facts.parameters.alpha == pytest.approx(rule.alpha_per_look)
    assert a.facts.by_threads[1].crossover_size is None and a.facts.by_threads[1].ahead_not_significant == [SIZE]
    assert f"p>={rule.alpha_per_look:g}" in a.prose.verdict                 # the level it tested at, said
    assert a.facts.to_dict()["parameters"]["alpha"] == pytest.approx(rule.alpha_per_look)


def _threads_dir(tmp_path, gbps: dict):
    d = synth.write_results(tmp_path / "t", impls=("one_copy",), sizes=(SIZE,), threads=tuple(sorted(
        {t for _, t in gbps})), repeats=3)
    return _plant(d, gbps)


def test_the_threads_answer_gives_where_throughput_stops_rising_once_refined(tmp_path):
    gbps = {("one_copy", 1): [10.0, 10.2, 9.9], ("one_copy", 2): [15.0, 15.05, 14.95],
            ("one_copy", 4): [15.02, 14.98, 15.0]}
    d = _threads_dir(tmp_path, gbps)
    f = threads.compute(load_results(d))
    assert f.plateau is None and "plateau" not in f.to_dict()       # never refined: as before
    assert "stops rising" not in threads.render(f).verdict

    rule = Rule()
    _refined(d, rule)
    f = threads.compute(load_results(d))
    (s,) = f.plateau["series"]
    assert f.plateau["alpha_per_look"] == pytest.approx(rule.alpha_per_look)
    rise, flat = (rule.decide(gbps[("one_copy", hi)], gbps[("one_copy", lo)]) for lo, hi in ((1, 2), (2, 4)))
    assert (rise.state, flat.state) == ("ahead", "same")    # what the rule says of the planted steps
    assert (s["lo"], s["hi"], s["status"]) == (1, 2, "located")
    assert s["after"]["state"] == flat.state and s["after"]["change"] == pytest.approx(flat.change)
    text = threads.render(f).verdict
    assert "one_copy at 65536 B stops rising at 2 threads" in text
    assert f"1 -> 2 rose {rise.change:+.0%} (n=3)" in text and f"2 -> 4 the same {flat.change:+.0%} (n=3)" in text
    assert f"alpha {rule.alpha_per_look:.3g} per look" in text


def test_a_wide_last_rise_is_a_bracket_and_a_rise_to_the_most_threads_says_so(tmp_path):
    gbps = {("one_copy", 1): [10.0, 10.2, 9.9], ("one_copy", 4): [15.0, 15.05, 14.95],
            ("one_copy", 8): [15.02, 14.98, 15.0]}
    d = _threads_dir(tmp_path / "a", gbps)
    _refined(d, Rule())
    f = threads.compute(load_results(d))
    (s,) = f.plateau["series"]
    assert (s["lo"], s["hi"], s["status"], s["midpoint"]) == (1, 4, "bisect", 2)
    assert "stops rising between 1 and 4 threads" in threads.render(f).verdict

    rising = {("one_copy", 1): [10.0, 10.2, 9.9], ("one_copy", 2): [15.0, 15.3, 14.8]}
    d = _threads_dir(tmp_path / "b", rising)
    _refined(d, Rule())
    f = threads.compute(load_results(d))
    assert "still rising at 2 threads, the most measured" in threads.render(f).verdict
    assert plateau.answered(load_results(d).runs, {}) is None


def test_a_step_open_at_the_rules_maximum_is_no_rise_decided(tmp_path):
    noisy = {("one_copy", 1): [10.0, 4.0], ("one_copy", 4): [16.0, 9.0]}
    d = synth.write_results(tmp_path / "n", impls=("one_copy",), sizes=(SIZE,), threads=(1, 4), repeats=2)
    _plant(d, noisy)
    rule = Rule(max_repeats=2)
    assert rule.decide(noisy[("one_copy", 4)], noisy[("one_copy", 1)]).state == "open"
    _refined(d, rule)
    f = threads.compute(load_results(d))
    assert f.plateau["series"][0]["status"] == "not_rising"
    text = threads.render(f).verdict
    assert "from 1 thread: no rise decided (open at the rule's 2 repeats)" in text and "no rise from" not in text
