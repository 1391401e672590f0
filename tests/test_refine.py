"""netobs refine without root (issue 26): the plan from stored results (what each point would
decide, its cost, the total against the budget), --dry-run and --json, interventions' plans
turned into points (interventions.plan monkeypatched: its module is another branch's), the
manifest's refinement rounds, and the crossover answer's bracket."""
from __future__ import annotations

import json
import sys
import types

import pytest

import synth
from conftest import NETOBS
from netobs.analysis.load import load_results
from netobs.analysis.questions import crossover
from netobs.refine import plan
from netobs.refine.rule import Rule
from netobs.store import ResultsDir, read_manifest


def _run(*args):
    import subprocess
    return subprocess.run([*NETOBS, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def single(tmp_path):
    """The study's three strategies at 4 sizes, 2 thread counts, one repeat each."""
    return synth.write_results(tmp_path / "single", repeats=1, threads=(1, 2))


def test_midpoints_are_geometric_on_the_grid():
    assert plan.midpoint(4096, 16384) == 8192
    assert plan.midpoint(1024, 4096) == 2048
    m = plan.midpoint(4096, 8192)
    assert m % plan.GRID_B == 0 and 4096 < m < 8192 and abs(m - 5793) < plan.GRID_B
    assert plan.midpoint(1024, 1088) is None     # no multiple of 64 B between them


def test_pairs_are_each_against_two_copy_and_zero_copy_against_its_baseline():
    assert plan.pairs(["zero_copy", "two_copy", "one_copy"]) == [
        ("one_copy", "two_copy"), ("zero_copy", "two_copy"), ("zero_copy", "one_copy")]
    assert plan.pairs(["one_copy"]) == []


def test_one_repeat_plans_repeats_of_every_comparison_within_budget(single):
    r = load_results(single)
    items, comps, _ = plan.plan_round(r.runs, Rule())
    assert len(comps) == 3 * 4 * 2 and set(comps.state) == {"open"}    # untested: one repeat each side
    assert {i.kind for i in items} == {"repeat"}
    chosen, left = plan.fit(items, lambda p: 2.0, 9.0)
    assert sum(p.cost_s for p in chosen) <= 9.0 and left
    assert all(p.params["repeat"] == 1 for p in chosen)
    everything, none_left = plan.fit(items, lambda p: 2.0, 1e9)
    assert not none_left and len(everything) == 3 * 4 * 2    # each point once, shared by its comparisons


@pytest.mark.integration
def test_dry_run_prints_the_plan_and_json_gives_it(single):
    p = _run("refine", single, "--dry-run", "--budget", "30s")
    assert p.returncode == 0, p.stderr
    assert "round 1:" in p.stdout and "of 30.0 s left" in p.stdout and "repeat" in p.stdout
    assert "bonferroni-over-looks" in p.stdout
    j = _run("refine", single, "--dry-run", "--budget", "30s", "--json")
    assert j.returncode == 0, j.stderr
    out = json.loads(j.stdout)
    assert out["stop"] == "dry_run" and out["rule"]["looks"] == 4 and out["budget_s"] == 30.0
    total = sum(p["cost_s"] for p in out["rounds"][0]["planned"])
    assert 0 < total <= 30.0 and out["rounds"][0]["total_s"] == pytest.approx(total, abs=1e-2)
    assert all(p["decides"] for p in out["rounds"][0]["planned"])
    assert "refinement" not in read_manifest(single)     # a dry run writes nothing


@pytest.mark.integration
def test_bad_budget_and_an_import_are_refused(single, tmp_path):
    p = _run("refine", single, "--dry-run", "--budget", "soon")
    assert p.returncode == 2 and "netobs: error: --budget 'soon' is not a duration" in p.stderr
    rows = synth.study_rows()
    imported = synth.write_imported(tmp_path / "imp", rows)
    p = _run("refine", imported, "--dry-run")
    assert p.returncode == 2 and "cannot refine" in p.stderr


def test_intervention_plans_become_points(single, monkeypatch):
    r = load_results(single)
    base = {"strategy": "one_copy", "msg_size": 16384, "threads": 2, "fields": 8, "nodelay": False,
            "placement": "split"}
    fake = types.ModuleType("netobs.refine.interventions")
    fake.plan = lambda results: [{"hypothesis": "oversubscription", "scope": {"a": []}, "base": base,
                                  "change": {"placement": "same"}, "expect": "gain",
                                  "decides": "oversubscription: another placement"}]
    monkeypatch.setitem(sys.modules, "netobs.refine.interventions", fake)
    got = plan.intervention_plans(r)
    items, _, _ = plan.plan_round(r.runs, Rule(), got)
    inter = [i for i in items if i.kind == "intervention"]
    assert len(inter) == 1 and inter[0].points == [{**base, "placement": "same", "repeat": 0}]
    chosen, _ = plan.fit(items, lambda p: 1.0, 1e9)
    assert any(p.kind == "intervention" and p.point_id == "one_copy-16384-2-psame-r0" for p in chosen)


def test_no_interventions_module_plans_none(single, monkeypatch):
    monkeypatch.setitem(sys.modules, "netobs.refine.interventions", None)   # absent: import fails
    with pytest.raises(ImportError):
        __import__("netobs.refine.interventions")
    monkeypatch.delitem(sys.modules, "netobs.refine.interventions")
    import importlib.util
    if importlib.util.find_spec("netobs.refine.interventions") is None:
        assert plan.intervention_plans(load_results(single)) == []


def test_rounds_are_recorded_in_the_manifest(single):
    store = ResultsDir.open_for_resume(single)
    try:
        store.add_refinement({"id": "x-1", "round": 1, "rule": Rule().to_dict(), "planned": []})
        store.add_refinement({"id": "x-1", "round": 1, "rule": Rule().to_dict(), "planned": [], "done": 0})
        store.add_refinement({"id": "x-2", "round": 2, "rule": Rule().to_dict(), "planned": []})
    finally:
        store.close()
    m = read_manifest(single)
    assert [r["id"] for r in m["refinement"]] == ["x-1", "x-2"] and m["refinement"][0]["done"] == 0
    assert m["refinement"][0]["rule"]["name"] == "bonferroni-over-looks"
    assert load_results(single).runs.shape[0] > 0    # still reads


def test_crossover_answer_gives_its_bracket(tmp_path):
    sizes = (4096, 8192, 10240, 11584, 16384)
    d = synth.write_results(tmp_path / "x", sizes=sizes, threads=(1,), repeats=3,
                            crossover={"one_copy": 11584, "zero_copy": None})
    f = crossover.compute(load_results(d), "one_copy")
    at = f.by_threads[1]
    assert at.crossover_size == 11584 and at.bracket == [10240, 11584]
    assert at.bracket_located and at.bracket_factor == pytest.approx(11584 / 10240)
    assert [e["msg_size"] for e in at.bracket_evidence] == [10240, 11584]
    assert "at 11584 B" in crossover.render(f).verdict and "located: not yet at 10240 B" in crossover.render(f).verdict
    wide = crossover.compute(load_results(synth.write_results(tmp_path / "w", threads=(1,), repeats=3)), "one_copy")
    assert wide.by_threads[1].bracket_located is False
    assert "located" not in crossover.render(wide).verdict


def test_bench_section_agrees_on_overlapping_brackets_and_prints_both():
    from netobs.bench import refine as bench
    assert bench._agree([], []) and bench._agree([[4096, 4672]], [[4416, 5184]])
    assert not bench._agree([[4096, 4672]], []) and not bench._agree([[1024, 1216]], [[4096, 4672]])
    assert len(bench.DENSE_SIZES) == 12 and all(s % plan.GRID_B == 0 for s in bench.DENSE_SIZES)
    side = {"located": [[4096, 4672]], "answer_bracket": [4096, 4672], "points": 40, "windows_s": 20.0,
            "wall_s": 60.0}
    res = {"settings": {"duration_s": 0.5, "warmup_s": 0.2, "pair": bench.PAIR, "dense_sizes": bench.DENSE_SIZES,
                        "dense_repeats": 5, "factor": plan.FACTOR, "goal_share": 0.4, "rule": Rule().to_dict()},
           "dense": {**side, "wall_s": 200.0}, "refined": {**side, "rounds": 3, "stop": "nothing_open"},
           "ratio": 0.3, "same_crossover": True}
    text = bench.format_refine(res)
    assert "4096-4672 B" in text and "30%" in text and "within goal" in text and "same crossover: yes" in text


def _two_sndbufs(path):
    """two_copy and one_copy at 16384 B, 1 and 2 threads: one repeat at the kernel's send buffer
    (sndbuf 0), two at 4 MiB, noisy there (every comparison open); pooled, the two settings would
    be one comparison of three repeats a side."""
    import csv
    d = synth.write_results(path, impls=("two_copy", "one_copy"), sizes=(16384,), threads=(1, 2), repeats=1)
    with open(d / "runs.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    big = []
    for r in rows:
        r["sndbuf"] = "0"
        for rep in range(2):
            sign = (-1) ** rep * (1 if r["implementation"] == "one_copy" else -1)
            gbps = float(r["throughput_gbps"]) * (1 + 0.3 * sign)
            big.append({**r, "sndbuf": "4194304", "repeat": str(rep), "throughput_gbps": repr(gbps)})
    with open(d / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows + big)
    return d


def test_settings_of_one_parameter_are_kept_apart_and_named(tmp_path, monkeypatch):
    from netobs.refine import measure, plateau
    from netobs.spec import stored_sweep
    r = load_results(_two_sndbufs(tmp_path / "sb"))
    items, comps, _ = plan.plan_round(r.runs, Rule())
    at1 = comps[comps.threads == 1]
    assert sorted(at1.sndbuf) == [0, 4194304]                       # two comparisons, not one pooled
    assert dict(zip(at1.sndbuf, at1.n_a)) == {0: 1, 4194304: 2}
    assert {s["sndbuf"] for s in (p.series for p in plateau.plateaus(plateau.steps(r.runs, Rule()), Rule()))} \
        == {0, 4194304}
    assert any("send buffer 4194304" in i.decides for i in items)
    chosen, _ = plan.fit(items, lambda p: 1.0, 1e9)
    big = [p for p in chosen if p.params["sndbuf"] == 4194304]
    assert big and all(p.point_id.endswith(f"-sb4194304-r{p.params['repeat']}") for p in big)
    assert all("-sb" not in p.point_id for p in chosen if p.params["sndbuf"] == 0)
    assert len({p.point_id for p in chosen}) == len(chosen)
    specs = measure.specs(stored_sweep(read_manifest(tmp_path / "sb")), chosen)
    assert [s.point_id for s in specs] == [p.point_id for p in chosen]    # what the sweep names them
    assert [s.sndbuf for s in specs] == [p.params["sndbuf"] for p in chosen]

    base = {"strategy": "one_copy", "msg_size": 16384, "threads": 2, "fields": 8, "nodelay": False,
            "placement": "split", "sndbuf": 4194304, "rcvbuf": 0, "recv": "copy"}
    fake = types.ModuleType("netobs.refine.interventions")
    fake.plan = lambda results: [{"hypothesis": "receive copy", "base": base, "change": {"recv": "trunc"},
                                  "decides": "receive copy: MSG_TRUNC"}]
    monkeypatch.setitem(sys.modules, "netobs.refine.interventions", fake)
    inter = [i for i in plan.plan_round(r.runs, Rule(), plan.intervention_plans(r))[0] if i.kind == "intervention"]
    assert len(inter) == 1 and len(inter[0].points) == 2       # the base's own setting's repeats, not 3 pooled
    got, _ = plan.fit(inter, lambda p: 1.0, 1e9)
    assert [p.point_id for p in got] == [f"one_copy-16384-2-sb4194304-rxtrunc-r{k}" for k in range(2)]
