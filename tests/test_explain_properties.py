"""Issue 23: the prose held by properties, not by snapshots. On every golden directory and the
real profiled sweep: each headline is one sentence of at most 30 words and every number in it is
shown by one of its reasons; every reason holds at most 6 numbers (the rest is in --evidence and
--json); no (hypothesis,
scope) gets two verdicts across questions; the compact explain is at most 90 lines, 30 per
question; no p-value is printed beside the caveat that no significance can be claimed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import fixture_answers

from netobs.cli import main
from netobs.analysis.questions.prose import MAX_NUMBERS, numbers

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DIRS = sorted(p for p in (FIXTURES / "golden").iterdir() if (p / "runs.csv").exists()) + [FIXTURES / "profiled-sweep"]


@pytest.fixture(scope="module", params=DIRS, ids=lambda p: p.name)
def answers(request):
    return request.param, fixture_answers(request.param)


def test_headlines_are_one_sentence_of_at_most_30_words_with_numbers_their_reasons_show(answers):
    _, found = answers
    for a in found:
        h = a.headline
        assert len(h.split()) <= 30, (a.key, h)
        assert h.endswith(".") and not re.search(r"\.\s+[A-Z]", h[:-1]), (a.key, h)
        shown = {n for r in a.reasons for n in numbers(r)}
        missing = [n for n in numbers(h) if n not in shown]
        assert not missing, (a.key, h, missing)


def test_every_reason_holds_at_most_six_numbers(answers):
    _, found = answers
    assert MAX_NUMBERS == 6
    for a in found:
        for text in a.reasons:
            assert len(numbers(text)) <= MAX_NUMBERS, (a.key, text)


def test_no_hypothesis_and_scope_has_two_verdicts(answers):
    _, found = answers
    seen: dict = {}
    for a in found:
        for j in a.facts.hypotheses:
            seen.setdefault((j.name, j.scope), set()).add(j.status)
    assert all(len(v) == 1 for v in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}


def test_the_compact_explain_keeps_to_its_line_limits(answers, capsys):
    path, _ = answers
    # in this process (what `netobs explain` prints through a pipe, byte for byte; the golden
    # snapshots run the command itself)
    assert main(["explain", str(path)]) in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 90
    starts = [i for i, line in enumerate(out) if "──" in line] + [len(out)]
    for a, b in zip(starts, starts[1:]):
        assert b - a + 1 <= 30, out[a]      # its lines and the blank one before it


def test_no_p_value_beside_the_caveat_that_none_can_be_claimed(answers):
    _, found = answers
    for a in found:
        if any(getattr(c, "code", None) == "single_repeat" for c in getattr(a.facts, "caveats", [])):
            assert not any(re.search(r"\bp[=<]\s?0?\.\d", t) for t in [a.headline] + a.reasons), a.key
