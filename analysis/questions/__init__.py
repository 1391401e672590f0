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
import numpy as np

from ..hypotheses import scope_points
from ..load import CONFIG, Results
from . import anomalies, cache, crossover, threads, zerocopy


@dataclass(frozen=True)
class Question:
    name: str
    title: str
    compute: Callable[[Results], object]
    render: Callable[[object], Prose]

    def answer(self, results: Results) -> Answer:
        from .common import parameters_of

        facts = self.compute(results)
        facts.parameters = parameters_of(results)   # (a refined directory's alpha per look: in the words too)
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
    _interventions(results, answers)
    return answers


def _interventions(results: Results, answers: list[Answer]) -> None:
    """Every intervention pair the results hold (netobs.refine.interventions), judged once, shown
    first among the hypotheses of each answer that judged the same hypothesis at a scope holding
    the pair's base configuration (an experiment outranks a correlation). A pair whose two
    configurations are both in such a scope is that answer's own comparison (a sweep's 2 threads
    against its 1 thread), already judged there: one piece of evidence, one verdict, so it is
    shown nowhere. A pair no answer scoped goes to the anomalies answer of its base's part."""
    from netobs.refine import interventions

    found = interventions.judge(results)
    if not found:
        return
    held = {}
    for a in answers:
        rows = results.runs
        if a.part:
            rows = rows[np.logical_and.reduce([rows[c] == v for c, v in a.part.items()])]
        held[id(a)] = {interventions.name_of(dict(zip(CONFIG, k)))
                       for k in rows[CONFIG].drop_duplicates().itertuples(index=False)}
    within, own = {}, set()     # answer -> the experiments it scoped; experiments some answer compared itself
    for a in answers:
        scopes = {}
        for j in a.facts.hypotheses:
            at, ref = scope_points(j.scope)
            scopes.setdefault(j.name, []).append(set(at) | set(ref))
        within[id(a)] = []
        for j in found:
            if interventions.base_config(j) not in held[id(a)]:
                continue
            base, changed = (tuple(c) for c in j.numbers["configurations"])
            hit = [pts for pts in scopes.get(j.name, []) if base in pts]
            if any(changed in pts for pts in hit) and interventions.changed_config(j) in held[id(a)]:
                own.add(id(j))
            elif hit:
                within[id(a)].append(j)
    placed = set()
    for a in answers:
        mine = [j for j in within[id(a)] if id(j) not in own]
        _rank_first(a, mine)
        placed.update(id(j) for j in mine)
    for j in found:
        if id(j) in placed or id(j) in own:
            continue
        a = next((a for a in answers if a.question == anomalies.NAME
                  and interventions.base_config(j) in held[id(a)]), None)
        if a is not None:
            _rank_first(a, [j])


def _rank_first(a: Answer, judgements: list) -> None:
    if not judgements:
        return
    from . import prose

    a.facts.hypotheses = list(judgements) + [j for j in a.facts.hypotheses if j not in judgements]
    a.prose.hypotheses = [prose.hypothesis(j) for j in judgements] + list(a.prose.hypotheses)


def _answer_all(results: Results, names) -> list[Answer]:
    settings = results.settings()
    if len(settings) > 1:   # (--placement same,split, --sndbuf 0,4M) answered setting by setting, like shapes
        out = []
        varied = [c for c in settings[0] if len({str(d[c]) for d in settings}) > 1]
        for d in settings:
            label = " ".join(f"{c} {d[c]}" for c in varied)
            for a in _answer_all(results.of_settings(d), names):
                a.shape = f"{a.shape} {label}" if a.shape else label
                a.title = f"{a.title} ({label})"
                a.part = {**a.part, **d}
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
            a.part = dict(zip(SHAPE_KEY, s))
            out.append(a)
    return out
