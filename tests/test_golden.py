"""The answers did not change: `netobs explain --json` on every directory in tests/fixtures/golden/
says what tests/fixtures/golden/explain/<name>.json says (regenerated for issue 14's headlines,
ranked reasons and tested hypotheses, each new claim checked against the numbers).

The same questions, verdicts, caveats, evidence rows and chart notes, and every facts key the
old code wrote with its value; the new JSON may add keys (verdict and caveat codes). Floats
agree to a relative 1e-9: the t distribution now comes from scipy, not a hand-written one.
"""
from __future__ import annotations

import json
import math

import pytest
from conftest import GOLDEN

from netobs.cli import main as cli_main

DIRS = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name != "explain")
REL = 1e-9


def differences(old, new, path: str = "") -> list[str]:
    """Where `new` loses or changes something `old` has (keys `new` adds are not looked at)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{path}: {new!r} is not an object"]
        return [d for k, v in old.items()
                for d in (differences(v, new[k], f"{path}.{k}") if k in new else [f"{path}.{k}: missing"])]
    if isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            return [f"{path}: {len(old)} items, now {new!r:.200}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(old, float) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return [] if math.isclose(old, new, rel_tol=REL) else [f"{path}: {old!r}, now {new!r}"]
    if type(old) is not type(new) or old != new:
        return [f"{path}: {old!r:.300}, now {new!r:.300}"]
    return []


def test_every_golden_directory_has_its_answers():
    assert DIRS == sorted(p.stem for p in (GOLDEN / "explain").glob("*.json"))
    assert "sweep-netns" in DIRS and len(DIRS) == 6


@pytest.mark.parametrize("name", DIRS)
def test_explain_json_says_what_it_said_before(name, capsys):
    assert cli_main(["explain", str(GOLDEN / name), "--json"]) == 0
    new = json.loads(capsys.readouterr().out)
    old = json.loads((GOLDEN / "explain" / f"{name}.json").read_text())
    old.pop("results_dir"), new.pop("results_dir")
    assert [a["question"] for a in new["answers"]] == [a["question"] for a in old["answers"]]
    for a, b in zip(old["answers"], new["answers"]):
        # words exactly, numbers to REL
        assert (b["title"], b["verdict"], b["caveats"], b["chart_note"]) == \
            (a["title"], a["verdict"], a["caveats"], a["chart_note"]), a["question"]
    assert differences(old, new) == []


def test_the_comparison_catches_a_change():
    old = {"facts": {"p": 0.25, "level": "L1", "rows": [{"n": 3}]}, "verdict": "x"}
    assert differences(old, {**old, "extra": 1}) == []
    assert differences(old, {"facts": {"p": 0.25 * (1 + 1e-12), "level": "L1", "rows": [{"n": 3}]},
                             "verdict": "x"}) == []
    changed = {"facts": {"p": 0.2500001, "level": "LLC", "rows": [{"n": 3.0}, {}]}, "verdict": "x"}
    assert differences(old, changed) == [".facts.p: 0.25, now 0.2500001", ".facts.level: 'L1', now 'LLC'",
                                         ".facts.rows: 1 items, now [{'n': 3.0}, {}]"]
    assert differences(old, {"facts": {"p": 0.25, "rows": [{"n": 3}]}}) == [".facts.level: missing",
                                                                           ".verdict: missing"]
