"""`python -m netobs.bench`: its arguments and its tables (the tracing runs themselves are
exercised as root in test_tracer.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from netobs.bench import __main__ as bench
from netobs.bench import peers


@pytest.mark.parametrize("args", [["--repeats", "2"], ["--trace-repeats", "2"], ["--duration", "0"]])
def test_bad_settings_are_refused_before_any_run(args, capsys, monkeypatch):
    monkeypatch.setattr(peers, "run_bench", lambda *a, **k: pytest.fail("ran despite bad settings"))
    assert bench.main(args + ["--no-trace"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netobs: error: ")


def test_tracing_table_shows_medians_paired_ratio_and_goal():
    row = {"topology": "netns", "msg_size": 1024, "meets_goal": True, "verdict": "met", "runs": 5, "untraced_median_gbps": 5.0, "traced_median_gbps": 4.6,
           "ratio": 0.92, "overhead_pct": 8.0, "goal_pct": 10.0, "paired_median_ratio": 0.935,
           "cpu_per_gb_ratio": 1.08, "traced_bytes_match": True}
    text = bench.format_tracing([row, dict(row, topology="loopback", msg_size=65536, meets_goal=False, verdict="within noise",
                                               paired_median_ratio=None, traced_bytes_match=False)])
    assert "medians of 5 interleaved runs" in text
    first, second = text.strip().splitlines()[-3:-1]
    assert first.split() == ["netns", "1024", "5.00", "4.60", "0.920", "8.0%", "10%", "yes", "0.935", "1.08", "yes"]
    assert second.split()[:2] == ["loopback", "65536"] and second.split()[7:9] == ["noise", "n/a"]
    assert second.endswith("NO")


def test_tracing_table_puts_the_per_send_cost_against_each_message_time():
    row = {"topology": "loopback", "msg_size": 1024, "meets_goal": True, "verdict": "met", "runs": 5, "untraced_median_gbps": 4.096,
           "traced_median_gbps": 3.8, "ratio": 0.93, "overhead_pct": 7.0, "goal_pct": 10.0,
           "paired_median_ratio": 0.93, "cpu_per_gb_ratio": 1.1, "traced_bytes_match": True}
    cost = {"untraced_ns": 140.0, "traced_ns": 340.0, "added_ns": 200.0, "rounds": 3,
            "traced_calls": 2_000_000, "expected_calls": 2_000_000,
            "send_probe": "raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)"}
    text = bench.format_tracing([row], cost)
    assert "not in this figure" not in text
    assert "not in this figure" in bench.format_tracing([row], dict(cost, send_probe="fexit:tcp_sendmsg"))
    assert "140 ns untraced, 340 ns traced: +200 ns" in text and "2,000,000 of 2,000,000 calls" in text
    # 1024 B at 4.096 Gbit/s: 2000 ns a message; 200 / (2000 + 200) = 9.1%
    assert "loopback 1024 B: a message takes 2,000 ns untraced; +200 ns per send is 9.1%" in text


def test_overhead_verdict_needs_every_pair_to_agree():
    from netobs.bench.tracing import _verdict
    assert _verdict(1.0, [0.98, 1.0, 1.1], 3.0) == "met"
    assert _verdict(2.0, [0.9, 1.1], 3.0) == "within noise"       # medians within, one pair not
    assert _verdict(4.0, [0.90, 0.95, 0.96, 1.02, 1.10], 3.0) == "within noise"
    assert _verdict(12.0, [0.80, 0.85, 0.88, 0.89, 0.89], 10.0) == "not met"
    assert _verdict(None, [], 3.0) == "not measured"


def test_peers_table_says_na_for_a_ratio_not_measured():
    cmp = {"name": "one_copy vs iperf3", "note": "n", "a": "netobs one_copy", "b": "iperf3",
           "a_median_gbps": 10.0, "b_median_gbps": 0.0, "ratio": None, "a_spread": 0.05, "b_spread": None,
           "a_samples": [{"gbps": 10.0}], "b_samples": [{"gbps": 0.0}]}
    res = {"settings": {"msg_size": 65536, "threads": 1, "warmup_s": 1, "duration_s": 3, "repeats": 3},
           "elapsed_s": 12.0, "comparisons": [cmp]}
    row = bench.format_table(res).splitlines()[4]
    assert row.split()[-2:] == ["n/a", "5%/n/a"]


def test_make_bench_entry_point_runs():
    """`make bench` is `python -m netobs.bench`: the package's entry answers, through the module."""
    proc = subprocess.run([sys.executable, "-m", "netobs.bench", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m netobs.bench") and "--no-trace" in proc.stdout
