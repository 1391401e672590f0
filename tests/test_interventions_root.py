"""Issue 26 item 4 and issue 23's non-reading receiver on the real kernel (root, netns).

- a real oversubscribed point: 4 client threads with the whole sweep on one CPU (taskset -c 0,
  --placement same, --profile) beside the fewer-threads intervention (1 thread): the pair is
  judged from the measured preempted share and `explain --json` shows it as an intervention;
- a real oversubscribed sweep (more working threads than cores, --placement same, --profile) given
  to `netobs refine --budget`: refine plans and runs the table's placement intervention (split),
  the pair is judged from the measured preempted share, and `explain` shows the experiment first
  in the threads answer whose step holds its base (the pair is not that answer's own comparison),
  with the verdict the rule gives from the printed numbers; that answer also gives where throughput
  stops rising, from the stored points;
- `--sndbuf`/`--rcvbuf`: a sweep axis, part of the point's name, and the kernel's doubled value
  read back and stored (sndbuf_bytes, rcvbuf_bytes);
- a receiver that does not read (`--recv slow`): the sending threads block on a full send
  buffer (`sndbuf_full` the largest share of their time) and no share exceeds 100%.
Run under the shared lock: flock /tmp/netobs-root.lock .venv/bin/python -m pytest -q tests/test_interventions_root.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IS_ROOT, NETOBS, need, need_workers, sweep_ok

from netobs.analysis import accounting as acc
from netobs.analysis.load import load_results
from netobs.figures import ROLES, WAIT_REASONS
from netobs.params import IDENTITY
from netobs.analysis.stats import ALPHA
from netobs.refine import interventions as iv
from netobs.refine.rule import Rule

pytestmark = pytest.mark.root
SIZE = 65536
MIB = 1 << 20


def _sweep(out: Path, *extra, prefix=()) -> Path:
    return sweep_ok(out, "--strategies", "one_copy", "--sizes", str(SIZE), "--duration", "0.8", "--warmup", "0.2",
                    *extra, prefix=prefix)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    need(IS_ROOT, "root")
    need_workers()
    base = tmp_path_factory.mktemp("interv")
    return {
        "over": _sweep(base / "over", "--threads", "1,4", "--repeats", "2", "--profile", "--placement", "same",
                       prefix=("taskset", "-c", "0")),
        "buffers": _sweep(base / "buffers", "--threads", "1", "--sndbuf", "0,1M", "--rcvbuf", "512K", "--no-perf"),
        "slow": _sweep(base / "slow", "--threads", "1", "--recv", "slow", "--profile", "--no-perf"),
    }


def test_a_real_oversubscribed_point_is_judged_against_fewer_threads(sweeps):
    r = load_results(sweeps["over"])
    four = r.runs[r.runs.threads == 4]
    pre = max(acc.thread_share(four, role, "preempted").mean() for role in ROLES)
    assert pre >= acc.PREEMPTED, pre        # measured: 8 working threads on one CPU
    (j,) = [j for j in iv.judge(r) if j.name == "oversubscription" and j.numbers["intervention"] == "threads:fewer"]
    d = j.numbers
    assert j.source == "intervention" and d["base_point"] == "one_copy-65536-4-psame"
    assert d["changed_point"] == "one_copy-65536-1-psame" and d["repeats"] == [2, 2]
    assert d["value"] == pytest.approx(pre)   # the side where the base had more of it
    assert d["changed"] < d["value"] and d["removed"] == pytest.approx((d["value"] - d["changed"]) / d["value"])
    expected = ("supported" if d["removed"] >= iv.REMOVED and (d["p_value"] is None or d["p_value"] < 0.05)
                else "contradicted" if d["removed"] < iv.KEPT else "inconclusive")
    assert j.status == expected
    print(f"oversubscription by fewer threads: {j.status}, preempted {d['value']:.3f} -> {d['changed']:.3f}, "
          f"removed {d['removed']:.0%}, throughput {d['throughput_change']:+.1%}")
    # a sweep of 1 and 4 threads: that pair is the threads answer's own step, judged there (one
    # piece of evidence, one verdict), so explain shows the experiment in no answer
    p = subprocess.run([sys.executable, "-m", "netobs", "explain", str(sweeps["over"]), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    answers = json.loads(p.stdout)["answers"]
    assert not [h for a in answers for h in a["hypotheses"] if h["source"] == "intervention"]
    step = [h for a in answers if a["question"] == "threads" for h in a["hypotheses"] if h["name"] == "oversubscription"]
    assert step and all("one_copy/65536/4" in h["scope"] and "one_copy/65536/1" in h["scope"] for h in step), step


def _verdict(d: dict) -> str:
    """What interventions.judge_pair's rule gives from a judgement's printed numbers."""
    if d.get("absent") or (d["floor"] is not None and d["value"] < d["floor"]):
        return "inconclusive"
    if d["removed"] is None or d["removed"] < iv.KEPT:
        return "contradicted"
    if d["removed"] >= iv.REMOVED and (d["p_value"] is None or d["p_value"] < ALPHA):
        return "supported"
    return "inconclusive"


def test_refine_runs_the_placement_intervention_on_a_real_oversubscribed_sweep_and_explain_shows_it(
        root, tmp_path):
    need_workers()
    many = max(4, 2 * (os.cpu_count() or 1))     # client + server threads: at least 4x the cores
    out = _sweep(tmp_path / "over", "--threads", f"1,{many}", "--repeats", "2", "--profile", "--placement", "same")
    base = f"one_copy-{SIZE}-{many}-psame"
    r = load_results(out)
    (cfg,) = [c for _, c in iv._configs(r).iterrows() if iv.name_of(dict(c)) == base]
    assert iv.measured_oversubscribed(r, dict(cfg))          # measured, not assumed from the cores
    (row,) = [x for x in iv.TABLE if x.hypothesis == "oversubscription" and x.param == "placement"]

    # (--max-repeats 2: no more repeats of the sweep's own steps, the budget goes to the interventions)
    p = subprocess.run(NETOBS + ["refine", str(out), "--budget", "40s", "--max-repeats", "2", "--json"],
                       capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    planned = [x for rnd in res["rounds"] for x in rnd["planned"]]
    ran = [x for x in planned if x["kind"] == "intervention" and x["params"]["placement"] == row.to]
    assert ran and {x["params"]["threads"] for x in ran} == {many}, (planned, [r["left_out"] for r in res["rounds"]])
    assert all(rnd["done"] == len(rnd["planned"]) and rnd["failed"] == 0 for rnd in res["rounds"])
    assert all(rnd["total_s"] <= rnd["budget_left_s"] + 1e-6 for rnd in res["rounds"])

    e = subprocess.run(NETOBS + ["explain", str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert e.returncode == 0, e.stderr[-2000:]
    answers = json.loads(e.stdout)["answers"]
    def mine(x):
        return (x["source"] == "intervention" and x["name"] == row.hypothesis and x["intervention"] == row.rule
                and x["base_point"] == base)
    shown = [(a, h) for a in answers for h in a["hypotheses"] if mine(h)]
    # shown in every answer that judged oversubscription at a scope holding its base (the threads
    # answer's step; the anomalies answer's too where it found a break there), with one verdict:
    # one piece of evidence, one judgement
    assert len({(h["status"], h["changed_point"]) for _, h in shown}) == 1, shown
    (a, h), = [(a, h) for a, h in shown if a["question"] == "threads"]
    assert {a["question"] for a, _ in shown} <= {"threads", "anomalies"}, [a["question"] for a, _ in shown]
    hyps = a["hypotheses"]
    assert h["name"] == "oversubscription" and h["base_point"] == base and h["changed_point"] == f"one_copy-{SIZE}-{many}"
    assert row.words in h["text"] and h["measure"] == "preempted"
    # ranked above every correlation-level judgement of the answer
    assert hyps.index(h) < min(i for i, x in enumerate(hyps) if x["source"] != "intervention")
    # the answer's own comparison is its step, not this pair
    step = [x for x in hyps if x["name"] == "oversubscription" and x["source"] != "intervention"]
    assert step and all(f"one_copy/{SIZE}/1" in x["scope"] for x in step)
    assert h["removed"] == pytest.approx((h["value"] - h["changed"]) / h["value"])
    assert h["status"] == _verdict(h)
    print(f"oversubscription by {row.rule}: {h['status']}, preempted {h['value']:.3f} -> {h['changed']:.3f} "
          f"({h['role']}), removed {h['removed']:.0%}, p {h['p_value']}, throughput {h['throughput_change']:+.1%}")

    # where throughput stops rising, in the answer, from the stored points by the refinement's rule
    plateau = a["facts"]["plateau"]
    (s,) = [x for x in plateau["series"] if x["impl"] == "one_copy" and x["placement"] == "same"]
    runs = load_results(out).runs
    same = runs[(runs.implementation == "one_copy") & (runs.msg_size == SIZE)]
    for name in (p.name for p in IDENTITY):      # the series' whole identity (placement same, fields 8, ...)
        same = same[same[name] == s[name]]
    rule = Rule(max_repeats=res["rule"]["max_repeats"])
    counts = sorted(int(t) for t in same.threads.unique())
    for ev, (lo, hi) in zip(s["evidence"], zip(counts, counts[1:])):
        d = rule.decide(same[same.threads == hi].throughput_gbps, same[same.threads == lo].throughput_gbps)
        assert (ev["lo"], ev["hi"], ev["state"], ev["n"]) == (lo, hi, d.state, d.n)
        assert ev["change"] == pytest.approx(d.change)
    (said,) = [x["text"] for x in a["reasons"] if x["code"] == "plateau"]
    assert said.startswith("Where throughput stops rising") and f"one_copy at {SIZE} B" in said, said
    print(said)


def test_the_socket_buffers_are_a_sweep_axis_and_the_kernels_doubled_value_is_recorded(sweeps):
    r = load_results(sweeps["buffers"])
    names = sorted(p.name for p in (sweeps["buffers"] / "points").iterdir())
    assert names == ["one_copy-65536-1-rb524288-r0", "one_copy-65536-1-sb1048576-rb524288-r0"]
    runs = r.runs.set_index("sndbuf")
    assert runs.loc[1 * MIB, "sndbuf_bytes"] == 2 * MIB          # the kernel doubles what is asked
    assert (r.runs["rcvbuf"] == 512 << 10).all() and (r.runs["rcvbuf_bytes"] == 1 * MIB).all()
    assert runs.loc[0, "sndbuf_bytes"] > 0                       # the default, as the kernel set it
    matrix = json.loads((sweeps["buffers"] / "manifest.json").read_text())["matrix"]
    assert matrix["sndbuf"] == [0, MIB] and matrix["rcvbuf"] == [512 << 10]


def test_a_receiver_that_does_not_read_blocks_the_sender_on_a_full_send_buffer(sweeps):
    runs = load_results(sweeps["slow"]).runs
    full = acc.thread_share(runs, "client", "sndbuf_full")
    assert (full >= 0.5).all(), full.tolist()
    for role in ROLES:
        shares = {w: acc.thread_share(runs, role, w) for w in ("utilisation",) + WAIT_REASONS}
        assert all((s.dropna() <= 1).all() for s in shares.values())
        assert (sum(s.fillna(0) for s in shares.values()) <= 1 + 1e-9).all()
    others = [acc.thread_share(runs, "client", w).mean() for w in WAIT_REASONS if w != "sndbuf_full"]
    assert full.mean() > max(others)                              # the largest reason of their time
    assert (runs["recv"] == "slow").all()
