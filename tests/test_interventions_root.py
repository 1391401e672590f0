"""Issue 26 item 4 and issue 23's non-reading receiver on the real kernel (root, netns).

- a real oversubscribed point: 4 client threads with the whole sweep on one CPU (taskset -c 0,
  --placement same, --profile) beside the fewer-threads intervention (1 thread): the pair is
  judged from the measured preempted share and `explain --json` shows it as an intervention;
- `--sndbuf`/`--rcvbuf`: a sweep axis, part of the point's name, and the kernel's doubled value
  read back and stored (sndbuf_bytes, rcvbuf_bytes);
- a receiver that does not read (`--recv slow`): the sending threads block on a full send
  buffer (`sndbuf_full` the largest share of their time) and no share exceeds 100%.
Run under the shared lock: flock /tmp/netobs-root.lock .venv/bin/python -m pytest -q tests/test_interventions_root.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IS_ROOT, need, need_workers, sweep_ok

from netobs.analysis import accounting as acc
from netobs.analysis.load import load_results
from netobs.figures import ROLES, WAIT_REASONS
from netobs.refine import interventions as iv

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
