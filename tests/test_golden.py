"""The answers did not change: on every directory in tests/fixtures/golden/ the facts of every
answer (numbers, verdict and caveat codes, each hypothesis's judgement and scope) are what
tests/fixtures/golden/explain/<name>.json says, and the reviewed text snapshots
(explain/<name>.txt) are what `netobs explain` prints. Both are regenerated only by
`make golden` (tests/golden_regen.py), deliberately, with the reason in the commit message.

Facts, not sentences: the prose is held by properties (tests/test_explain_properties.py).
The facts may gain keys; floats agree to a relative 1e-9.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN, fixture_answers

sys.path.insert(0, str(Path(__file__).parent))
import golden_regen  # noqa: E402

DIRS = golden_regen.dirs()
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
def test_the_facts_are_what_they_were(name):
    new = json.loads(json.dumps(golden_regen.facts(GOLDEN / name, fixture_answers(GOLDEN / name))))
    old = json.loads((GOLDEN / "explain" / f"{name}.json").read_text())
    assert list(new) == list(old) or sorted(new) == sorted(old)
    for key, a in old.items():
        b = new[key]
        assert (b["verdict"], b["caveats"]) == (a["verdict"], a["caveats"]), key
        assert b["hypotheses"] == a["hypotheses"], key       # one judgement per (hypothesis, scope)
    assert differences(old, new) == []


@pytest.mark.integration
@pytest.mark.parametrize("name", golden_regen.SNAPSHOTS)
def test_the_reviewed_text_snapshot_is_what_explain_prints(name):
    assert golden_regen.text(GOLDEN / name) == (GOLDEN / "explain" / f"{name}.txt").read_text()


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
