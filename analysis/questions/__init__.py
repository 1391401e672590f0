"""The study's six questions, each answered from a loaded results directory.

Each question is a module with `compute(results) -> facts` (numbers, verdict and caveat
codes, the evidence frame; no sentence) and `render(facts) -> Prose` (the verdict, caveats
and table, from the facts alone). `QUESTIONS` declares them in the study's order; the
explain command and the report ask through `check_names` and `answer_all`.

To add a question: a module here with NAME, TITLE, compute and render (shared pieces in
`common` and `prose`), then a row in QUESTIONS.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from netobs.errors import UsageError
from netobs.figures import SHAPE_KEY, STUDY_SHAPE, shape_label

from ..answer import Answer, Prose
from ..load import Results
from . import anomalies, cache, crossover, threads, zerocopy


@dataclass(frozen=True)
class Question:
    name: str
    title: str
    compute: Callable[[Results], object]
    render: Callable[[object], Prose]

    def answer(self, results: Results) -> Answer:
        facts = self.compute(results)
        if results.imported:   # whatever a reason reads, in an import it came from the imported file
            for x in getattr(facts, "reasons", []):
                x.source = "import"
        return Answer(self.name, self.title, facts, self.render(facts))


def _crossover(impl: str) -> Question:
    return Question(crossover.name(impl), crossover.title(impl), functools.partial(crossover.compute, impl=impl),
                    crossover.render)


QUESTIONS: dict[str, Question] = {q.name: q for q in (
    Question(zerocopy.NAME, zerocopy.TITLE, zerocopy.compute, zerocopy.render),
    Question(cache.NAME, cache.TITLE, cache.compute, cache.render),
    Question(threads.NAME, threads.TITLE, threads.compute, threads.render),
    _crossover("one_copy"),
    _crossover("zero_copy"),
    Question(anomalies.NAME, anomalies.TITLE, anomalies.compute, anomalies.render),
)}


def check_names(names) -> list[str]:
    """The question names, validated (UsageError listing the valid ones)."""
    names = list(names or QUESTIONS)
    unknown = [n for n in names if n not in QUESTIONS]
    if unknown:
        raise UsageError(f"unknown question {', '.join(repr(n) for n in unknown)}",
                         fix="one of: " + ", ".join(QUESTIONS))
    return list(dict.fromkeys(names))


def run_caveats(answers: list[Answer]) -> list[dict]:
    """The caveats that hold for the whole run (common.RUN_CAVEATS), once each: code, data and words."""
    from .common import RUN_CAVEATS
    out, seen = [], set()
    for a in answers:
        for c, text in zip(getattr(a.facts, "caveats", []), a.caveats):
            if c.code in RUN_CAVEATS and text not in seen:
                seen.add(text)
                out.append({**c.to_dict(), "text": text})
    return out


STUDY = tuple(STUDY_SHAPE[c] for c in SHAPE_KEY)   # the study's message shape: 8 fields, no TCP_NODELAY


def answer_all(results: Results, names=None) -> list[Answer]:
    """Answer the named questions (all six, in order, when names is None). Results of several
    message shapes (--fields, --nodelay) are answered shape by shape, each question's answers
    side by side: the questions compare strategies at one (size, threads), never across shapes.
    Where the placement was not controlled, a strategy gap below the run's measured placement
    effect is said not to be the strategy's (analysis.noise.guard)."""
    from ..noise import guard

    answers = _answer_all(results, check_names(names))
    guard(results, answers)
    return answers


def _answer_all(results: Results, names) -> list[Answer]:
    placements = results.placements()
    if len(placements) > 1:   # (--placement same,split) answered placement by placement, like shapes
        out = []
        for p in placements:
            for a in _answer_all(results.of_placement(p), names):
                a.shape = f"{a.shape} placement {p}" if a.shape else f"placement {p}"
                a.title = f"{a.title} (placement {p})"
                out.append(a)
        return out
    shapes = results.shapes()
    if shapes == [STUDY]:
        return [QUESTIONS[n].answer(results) for n in names]
    parts = {s: results.of_shape(s) if len(shapes) > 1 else results for s in shapes}
    out = []
    for n in names:
        for s, part in parts.items():
            a = QUESTIONS[n].answer(part)
            a.shape = shape_label(*s)
            a.title = f"{a.title} ({a.shape})"
            out.append(a)
    return out
