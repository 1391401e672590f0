"""The zerocopy question with the senders beyond the study's: each zero-copy sender is compared
with its own copy baseline (io_uring_zc with io_uring, sendfile and splice with one_copy), from
planted truths; results of the study's three alone say what they said (tests/test_golden.py)."""
from __future__ import annotations

import json

import pandas as pd
import synth

from netobs.analysis.load import load_results
from netobs.analysis.questions import answer_all

def _zerocopy(path):
    return next(a for a in answer_all(load_results(path)) if a.question == "zerocopy")


def _with_more_senders(path):
    """The study's rows copied as the other senders' (synth models the study's three): io_uring
    as one_copy, io_uring_zc as zero_copy at half io_uring's throughput (planted), sendfile at
    1.5x one_copy's (planted)."""
    runs = path / "runs.csv"
    df = pd.read_csv(runs)
    one, zc = df[df.implementation == "one_copy"], df[df.implementation == "zero_copy"]
    uring = one.assign(implementation="io_uring")
    uring_zc = zc.assign(implementation="io_uring_zc")
    uring_zc["throughput_gbps"] = uring["throughput_gbps"].to_numpy() * 0.5
    sendfile = one.assign(implementation="sendfile", throughput_gbps=one.throughput_gbps * 1.5)
    pd.concat([df, uring, uring_zc, sendfile]).to_csv(runs, index=False)
    manifest = json.loads((path / "manifest.json").read_text())
    matrix = manifest.setdefault("matrix", {})
    key = "strategies" if "strategies" in matrix else "impls"
    matrix[key] = list(matrix.get(key) or ["two_copy", "one_copy", "zero_copy"]) + ["io_uring", "io_uring_zc", "sendfile"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_each_zero_copy_sender_meets_its_copy_baseline(tmp_path):
    path = _with_more_senders(synth.write_results(tmp_path / "r", sizes=(4096, 65536), threads=(1, 2)))
    a = _zerocopy(path)
    pairs = a.facts.pairs
    assert set(pairs) == {"zero_copy", "io_uring_zc", "sendfile"}
    assert pairs["io_uring_zc"]["baseline"] == "io_uring" and pairs["sendfile"]["baseline"] == "one_copy"
    uz = pairs["io_uring_zc"]["vs"]
    assert uz["lost"] == uz["configurations"] == 4 and abs(uz["median_change_pct"] + 50) < 3
    sf = pairs["sendfile"]["vs"]
    assert sf["won"] == 4 and abs(sf["median_change_pct"] - 50) < 3
    assert "io_uring_zc against io_uring: won 0 and lost 4 of 4" in a.prose.verdict
    assert "sendfile against one_copy: won 4 and lost 0 of 4" in a.prose.verdict


def test_the_studys_three_alone_have_only_zero_copys_pair(tmp_path):
    a = _zerocopy(synth.write_results(tmp_path / "r", sizes=(4096,), threads=(1,)))
    assert set(a.facts.pairs) == {"zero_copy"} and a.facts.pairs["zero_copy"]["baseline"] == "one_copy"
    assert " against io_uring" not in a.prose.verdict
