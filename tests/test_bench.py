"""`python -m netobs.bench`: its arguments, its tables, the observer-overhead method on synthetic
runs, and the observer's cost it keeps for traced runs (the tracing runs themselves are exercised
as root in test_tracer.py and test_profiler.py)."""
from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys

import pytest

from netobs.bench import __main__ as bench
from netobs.bench import peers, tracing


@pytest.mark.parametrize("args", [["--repeats", "2"], ["--duration", "0"], ["--trace-pairs", "3"],
                                  ["--trace-observers", "strace"], ["--trace-budget-s", "1"]])
def test_bad_settings_are_refused_before_any_run(args, capsys, monkeypatch):
    monkeypatch.setattr(peers, "run_bench", lambda *a, **k: pytest.fail("ran despite bad settings"))
    monkeypatch.setattr(tracing, "tracing_overhead", lambda *a, **k: pytest.fail("ran despite bad settings"))
    assert bench.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netobs: error: ")


# -- the method, on synthetic runs (a fake clock: no traffic) ----------------------------------------
class FakeHost:
    """Runs whose CPU per GB is 1.0 (plain) or 1 + overhead (observed), times 1 + N(0, noise);
    each run advances the clock by its window plus `cost_s` (and the observer's open)."""

    def __init__(self, overhead: float, noise: float, seed: int = 1, cost_s: float = 1.0):
        self.rng = random.Random(seed)
        self.overhead, self.noise, self.cost_s = overhead, noise, cost_s
        self.now = 0.0
        self.calls: list[tuple[str, float]] = []

    def clock(self) -> float:
        return self.now

    def run(self, variant: str, window: float) -> dict:
        self.calls.append((variant, window))
        self.now += window + self.cost_s + (0.5 if variant == "traced" else 0.0)
        cpu = (1.0 + (self.overhead if variant == "traced" else 0.0)) * (1.0 + self.rng.gauss(0.0, self.noise))
        return {"cpu_s_per_gb": cpu, "gbps": 10.0 / cpu}


def _measure(host: FakeHost, goal: float, budget: float = 600.0, seed: int = 3, **kw) -> dict:
    return tracing.measure(host.run, goal, budget, seed, clock=host.clock, **kw)


def test_a_planted_overhead_above_the_goal_is_over_goal():
    m = _measure(FakeHost(overhead=0.05, noise=0.01), goal=2.0)
    lo, hi = m["cpu"]["overhead_ci_pct"]
    assert m["verdict"] == "over goal" and 2.0 < lo < 5.0 < hi
    assert m["stop"] == "interval narrower than the goal" and m["cpu"]["width_pct"] < 2.0
    # the rate goes the other way: the observed runs move fewer Gbps
    assert m["throughput"]["overhead_pct"] > 2.0 and m["throughput"]["mean"] < 1.0


def test_noise_alone_is_within_goal():
    m = _measure(FakeHost(overhead=0.0, noise=0.01), goal=2.0)
    assert m["verdict"] == "within goal" and m["cpu"]["overhead_ci_pct"][1] <= 2.0
    assert m["cpu"]["overhead_ci_pct"][0] < 0.0 < m["cpu"]["overhead_ci_pct"][1]


def test_an_interval_that_straddles_the_goal_cannot_tell():
    r = tracing.judge_ratios([1.00, 1.04, 0.99, 1.03], worse_when_higher=True)
    lo, hi = r["overhead_ci_pct"]
    assert lo < 2.0 < hi and tracing.verdict(r["overhead_ci_pct"], 2.0) == "cannot tell"
    assert tracing.verdict([2.5, 4.0], 2.0) == "over goal" and tracing.verdict([-1.0, 2.0], 2.0) == "within goal"
    assert tracing.verdict(None, 2.0) == "cannot tell"            # one pair: no interval
    # a noisy host within a small budget: the interval stays wide, and the bench says so
    m = _measure(FakeHost(overhead=0.02, noise=0.10), goal=2.0, budget=60.0)
    assert m["verdict"] == "cannot tell" and m["cpu"]["width_pct"] > 2.0


def test_the_adaptive_loop_stops_at_its_bound():
    host = FakeHost(overhead=0.0, noise=0.20)
    m = _measure(host, goal=2.0, budget=90.0)
    assert m["stop"] == "budget" and m["elapsed_s"] <= 90.0 and host.now <= 90.0
    assert len(m["pairs"]) >= tracing.MIN_PAIRS
    # the spread came first: untraced runs of the probe window, then pairs of the planned window
    probe = host.calls[:tracing.PROBE_RUNS]
    assert probe == [("untraced", tracing.PROBE_WINDOW_S)] * tracing.PROBE_RUNS
    assert {w for _, w in host.calls[tracing.PROBE_RUNS:]} == {m["window_s"]} == {m["plan"]["window_s"]}
    assert m["spread"]["cpu_cv"] > 0.05 and m["budget_s"] == 90.0
    # one pair runs even when the probe took the whole budget
    tiny = _measure(FakeHost(overhead=0.0, noise=0.01), goal=2.0, budget=3.0)
    assert tiny["stop"] == "budget" and len(tiny["pairs"]) == 1 and tiny["verdict"] == "cannot tell"


def test_a_quiet_host_gets_short_windows_a_noisy_one_longer():
    quiet = tracing.plan_window(0.002, 3.0, 200.0, run_cost_s=1.5, pair_extra_s=1.0)
    noisy = tracing.plan_window(0.05, 3.0, 200.0, run_cost_s=1.5, pair_extra_s=1.0)
    assert quiet["reaches_goal"] and quiet["window_s"] == min(tracing.WINDOWS_S) and quiet["pairs"] == tracing.MIN_PAIRS
    assert noisy["window_s"] > quiet["window_s"]
    hopeless = tracing.plan_window(0.5, 3.0, 200.0, run_cost_s=1.5, pair_extra_s=1.0)
    assert not hopeless["reaches_goal"] and hopeless["pairs"] * hopeless["pair_s"] <= 200.0
    unknown = tracing.plan_window(float("nan"), 3.0, 200.0, run_cost_s=1.5, pair_extra_s=1.0)
    assert unknown["window_s"] == max(tracing.WINDOWS_S) and not unknown["reaches_goal"]


def test_the_pairs_order_is_seeded_random_and_balanced():
    a = list(itertools.islice(tracing.balanced_orders(7), 40))
    assert a == list(itertools.islice(tracing.balanced_orders(7), 40))
    assert a != list(itertools.islice(tracing.balanced_orders(8), 40))
    alternating = [tracing.VARIANTS, tracing.VARIANTS[::-1]] * 20
    assert a != alternating and a != alternating[1:] + alternating[:1]
    for k in range(1, 41):
        first = sum(o == tracing.VARIANTS for o in a[:k])
        assert abs(first - (k - first)) <= 1
    host = FakeHost(0.0, 0.01)
    m = _measure(host, goal=2.0, seed=7, pairs=6, window_s=2.0)
    assert m["seed"] == 7 and m["orders"] == [",".join(o) for o in a[:6]] and m["stop"] == "fixed design"
    assert [v for v, _ in host.calls] == [v for o in a[:6] for v in o]     # the runs went in that order


def _timeline(**kw) -> dict:
    tl = {"compile_attach": [0.0, 0.7], "point": [0.7, 4.9], "window_opens_after": 1.7,
          "window_closes_before": 4.9, "window_s": 3.0, "detach": [4.9, 5.1]}
    return {**tl, **kw}


def test_compile_and_attach_must_end_before_the_window_opens():
    assert tracing.outside_window(_timeline())
    assert not tracing.outside_window(_timeline(compile_attach=[0.0, 2.0]))     # the window opened first
    assert not tracing.outside_window(_timeline(detach=[4.5, 4.7]))              # detached inside it
    assert not tracing.outside_window(_timeline(window_s=3.5))                   # no room for the window
    assert not tracing.outside_window(_timeline(window_s=None)) and not tracing.outside_window(None)


def test_the_per_event_cost_is_the_added_cpu_over_the_traced_syscalls():
    # 0.01 s/GB more CPU over 1e6 traced syscalls per GB: 10 ns per syscall
    pair = {"untraced": {"cpu_s_per_gb": 0.50}, "traced": {"cpu_s_per_gb": 0.51, "events_per_gb": 1e6}}
    assert tracing.per_event_ns(pair) == pytest.approx(10.0)
    assert tracing.per_event_ns({"untraced": pair["untraced"], "traced": {"cpu_s_per_gb": 0.51, "events_per_gb": None}}) is None


# -- the table ---------------------------------------------------------------------------------
def _row(**kw) -> dict:
    cpu = tracing.judge_ratios([1.010, 1.030, 1.020, 1.000], worse_when_higher=True)
    thr = tracing.judge_ratios([0.99, 0.97, 0.98, 1.00], worse_when_higher=False)
    row = {"observer": "trace", "topology": "netns", "msg_size": 65536, "strategy": "one_copy", "goal_pct": 3.0,
           "spread": {"runs": 3, "window_s": 1.0, "cpu_cv": 0.021, "gbps_cv": 0.03, "run_cost_s": 1.6},
           "plan": {"window_s": 4.0, "pairs": 6, "width_pct": 2.8, "pair_s": 13.0, "reaches_goal": True},
           "window_s": 4.0, "seed": 11, "orders": ["untraced,traced", "traced,untraced"] * 2, "stop": "budget",
           "budget_s": 100.0, "elapsed_s": 96.0, "n_pairs": 4, "cpu": cpu, "throughput": thr,
           "verdict": tracing.verdict(cpu["overhead_ci_pct"], 3.0), "untraced_gbps": [4.096] * 4,
           "timelines": [_timeline()] * 4, "observer_outside_window": True, "observer_margin_s": [1.0, 0.0],
           "lost_events": 0, "traced_bytes_match": True,
           "ns_per_event": tracing.interval([300.0, 280.0, 350.0, 310.0])}
    return {**row, **kw}


def test_tracing_table_shows_both_ratios_with_their_intervals_and_the_verdict():
    text = bench.format_tracing([_row(), _row(topology="loopback", msg_size=1024, cpu=tracing.judge_ratios([1.02], True),
                                          verdict="cannot tell", traced_bytes_match=False)])
    lines = text.strip().splitlines()
    r = _row()
    lo, hi = r["cpu"]["ci"]
    first = next(ln for ln in lines if ln.startswith("netns"))
    assert first.split()[:4] == ["netns", "65536", "4", "4"]
    assert f"1.015 [{lo:.3f}, {hi:.3f}]" in first and "+1.5% [" in first
    assert first.rstrip().endswith(r["verdict"]) and r["verdict"] == "cannot tell"   # [-0.6, +3.6]% straddles 3%
    tlo, thi = r["throughput"]["ci"]
    assert f"0.985 [{tlo:.3f}, {thi:.3f}]" in first
    second = next(ln for ln in lines if ln.startswith("loopback"))
    assert "1.020 [n/a]" in second and second.rstrip().endswith("cannot tell")
    assert "seed 11: PO OP PO OP (2 plain first, 2 traced first)" in text
    assert "compile+attach outside the window: yes (ended >= 1.00 s before any window could open" in text
    assert "per traced send/recv syscall (both ends) +310 ns [" in text and "traced bytes = sent: NO" in text
    assert "spread first: 3 plain runs of 1 s, CV of CPU/GB 2.1%" in text and "stopped: budget" in text


def test_tracing_table_puts_the_per_send_cost_against_each_message_time():
    cost = {"untraced_ns": 140.0, "traced_ns": 340.0, "added_ns": 200.0, "rounds": 3,
            "traced_calls": 2_000_000, "expected_calls": 2_000_000,
            "send_probe": "raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)"}
    row = _row(topology="loopback", msg_size=1024)
    text = bench.format_tracing([row], cost)
    assert "not in this figure" not in text
    assert "not in this figure" in bench.format_tracing([row], dict(cost, send_probe="fexit:tcp_sendmsg"))
    assert "140 ns untraced, 340 ns traced: +200 ns" in text and "2,000,000 of 2,000,000 calls" in text
    # 1024 B at 4.096 Gbit/s: 2000 ns a message; 200 / (2000 + 200) = 9.1%
    assert "loopback 1024 B: a message takes 2,000 ns untraced; +200 ns per send is 9.1%" in text


def test_profiling_table_has_no_tracer_columns():
    text = bench.format_tracing([_row(observer="profile", traced_bytes_match=None, ns_per_event=None,
                                      spread=None, plan=None, budget_s=None)], observer="profile")
    assert "profiling overhead: netobs run --profile vs without" in text and "fixed design: 4 pairs of 4 s" in text
    assert "traced bytes" not in text and "syscall" not in text and "O profiled" in text


# -- the observer's cost kept for traced runs without --profile ---------------------------------------
FIGURE = {"per": "traced send/recv syscall", "cpu": "user+sys",
          "figures": [{"topology": "netns", "msg_size": 65536, "ns_per_event": 310.0, "ci": [250.0, 370.0]},
                      {"topology": "netns", "msg_size": 1024, "ns_per_event": 290.0, "ci": [100.0, 480.0]},
                      {"topology": "loopback", "msg_size": 65536, "ns_per_event": 200.0, "ci": [150.0, 250.0]}]}


@pytest.mark.integration
def test_observer_cost_round_trip_and_entry(tmp_path, monkeypatch):
    from netobs import hostinfo, observer_cost

    monkeypatch.setenv("NETOBS_LIB_DIR", str(tmp_path / "lib"))
    none = observer_cost.entry("netns")
    assert none["source"] is None and none["ns_per_event"] is None and "no bench figure" in none["reason"]
    path = observer_cost.save(FIGURE)
    assert path == tmp_path / "lib" / "observer-cost.json"
    doc = observer_cost.load()
    assert doc["figures"] == FIGURE["figures"] and doc["source"] == "bench" and doc["measured_at"]
    assert doc["host"]["hostname"] == hostinfo.host_facts()["hostname"]
    e = observer_cost.entry("netns")               # the narrowest interval of the topology's sizes
    assert (e["source"], e["topology"], e["msg_size"], e["ns_per_event"], e["ci"]) == \
        ("bench", "netns", 65536, 310.0, [250.0, 370.0])
    assert e["same_host"] and e["measured_at"] == doc["measured_at"]
    assert observer_cost.entry("loopback")["ns_per_event"] == 200.0
    path.write_text("{}")
    assert "unreadable" in observer_cost.entry("netns")["reason"]


def test_the_bench_keeps_only_trace_rows_with_a_figure():
    rows = [_row(), _row(observer="profile", ns_per_event=None), _row(msg_size=1024, ns_per_event=tracing.interval([]))]
    fig = tracing.observer_cost_figure(rows)
    assert [(f["topology"], f["msg_size"]) for f in fig["figures"]] == [("netns", 65536)]
    assert fig["figures"][0]["ns_per_event"] == pytest.approx(310.0) and len(fig["figures"][0]["ci"]) == 2
    assert tracing.observer_cost_figure(rows[1:]) is None


@pytest.mark.root
def test_a_traced_run_without_profile_carries_the_bench_figure(root, tmp_path):
    from netobs import observer_cost

    env = {**os.environ, "NETOBS_LIB_DIR": str(tmp_path)}
    os.environ["NETOBS_LIB_DIR"] = str(tmp_path)
    try:
        observer_cost.save(FIGURE)
    finally:
        del os.environ["NETOBS_LIB_DIR"]
    proc = subprocess.run([sys.executable, "-m", "netobs", "run", "--topology", "loopback", "--strategy", "one_copy",
                           "--trace", "--no-perf", "--duration", "0.3", "--warmup", "0.1", "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    cost = json.loads(proc.stdout)["observer_cost"]
    assert cost["source"] == "bench" and cost["topology"] == "loopback" and cost["ns_per_event"] == 200.0
    assert cost["ci"] == [150.0, 250.0] and cost["path"] == str(tmp_path / "observer-cost.json")


def test_peers_table_says_na_for_a_ratio_not_measured():
    cmp = {"name": "one_copy vs iperf3", "note": "n", "a": "netobs one_copy", "b": "iperf3",
           "a_median_gbps": 10.0, "b_median_gbps": 0.0, "ratio": None, "a_spread": 0.05, "b_spread": None,
           "a_samples": [{"gbps": 10.0}], "b_samples": [{"gbps": 0.0}]}
    res = {"settings": {"msg_size": 65536, "threads": 1, "warmup_s": 1, "duration_s": 3, "repeats": 3},
           "elapsed_s": 12.0, "comparisons": [cmp]}
    row = bench.format_table(res).splitlines()[4]
    assert row.split()[-2:] == ["n/a", "5%/n/a"]


@pytest.mark.integration
def test_make_bench_entry_point_runs():
    """`make bench` is `python -m netobs.bench`: the package's entry answers, through the module."""
    proc = subprocess.run([sys.executable, "-m", "netobs.bench", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m netobs.bench") and "--no-trace" in proc.stdout


@pytest.mark.root
def test_a_peers_cell_runs_netobs_and_iperf3_between_namespaces(root):
    """The netns cells (issue 15's benchmark): both tools run inside the two namespaces netobs
    makes, the server on its veth address; nothing of the topology is left after."""
    from pyroute2 import netns

    cell = next(c for c in peers.COMPARISONS if c.topology == "netns" and "16K" in c.name)
    res = peers.run_bench(peers.Settings(duration=1.0, warmup=0.0, repeats=1), [cell])
    (c,) = res["comparisons"]
    assert c["topology"] == "netns" and res["settings"]["topologies"] == ["netns"]
    assert c["a_median_gbps"] > 0 and c["b_median_gbps"] > 0 and c["ratio"] > 0
    assert c["b_samples"][0]["receiver_gbps"] > 0
    assert not [n for n in netns.listnetns() if n.startswith("nob")]
    assert "netns" in bench.format_table(res).splitlines()[0]
