"""An answer: the facts a question computed, and the prose rendered from them alone.

Facts (per question, a dataclass in `analysis.questions`) hold numbers, verdict and caveat
codes, the evidence frame and the chart's data; no sentence. `Prose` is one view of them:
the verdict, the caveats, the evidence table as shown, and the words that the JSON keeps
beside the facts (the methods, and the anomalies' descriptions).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from netobs.jsonsafe import jsonable


@dataclass
class Prose:
    """verdict:  a few sentences built from the facts' numbers (never canned text);
    caveats:  what limits the answer, one sentence each (from the facts' caveat codes);
    table:    the evidence as shown (the facts' evidence, codes put in words);
    key_columns: the table columns a compact view shows (all when empty);
    chart_note: why there is no chart of the answer's own data (None when there is one);
    text:     words the JSON facts carry at their keys (merged into `Facts.to_dict()`);
    headline: one sentence, the verdict with its key number (the verdict starts with it);
    reasons:  one sentence per facts reason, heaviest first, each with its numbers and source;
    hypotheses: one line per judged hypothesis (supported first);
    own_caveats: the caveats specific to this answer (the run's are said once, before all)."""

    verdict: str
    caveats: list[str]
    table: pd.DataFrame
    key_columns: list[str] = field(default_factory=list)
    chart_note: str | None = None
    text: dict = field(default_factory=dict)
    headline: str = ""
    reasons: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    own_caveats: list[str] | None = None


@dataclass
class Answer:
    """One study question answered from the data: its facts, and their prose."""

    question: str
    title: str
    facts: object          # the question's facts dataclass (with to_dict, evidence, chart_data)
    prose: Prose
    shape: str = ""        # the message shape answered ("f=1"), where the results have several or another
    part: dict = field(default_factory=dict)   # the shape and settings answered (load.SHAPE + SETTINGS: value)

    @property
    def key(self) -> str:
        """The answer's name among the answers: the question's, with the shape where there is one."""
        return f"{self.question}@{self.shape.replace(' ', '-')}" if self.shape else self.question

    @property
    def verdict(self) -> str:
        return self.prose.verdict

    @property
    def caveats(self) -> list[str]:
        return self.prose.caveats

    @property
    def headline(self) -> str:
        return self.prose.headline or self.prose.verdict

    @property
    def reasons(self) -> list[str]:
        return self.prose.reasons

    @property
    def hypotheses(self) -> list[str]:
        return self.prose.hypotheses

    @property
    def own_caveats(self) -> list[str]:
        return self.prose.caveats if self.prose.own_caveats is None else self.prose.own_caveats

    @property
    def evidence(self) -> pd.DataFrame:
        return self.prose.table

    @property
    def key_columns(self) -> list[str]:
        return self.prose.key_columns

    @property
    def chart_note(self) -> str | None:
        return self.prose.chart_note

    @property
    def chart_data(self) -> pd.DataFrame:
        return self.facts.chart_data

    def facts_dict(self) -> dict:
        """The facts as JSON: their numbers and codes, with the prose's words at their keys."""
        return jsonable(merge(self.facts.to_dict(), self.prose.text))

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            **({"shape": self.shape} if self.shape else {}),
            "title": self.title,
            "headline": self.headline,
            "reasons": [{"text": t, **x.to_dict()} for t, x in zip(self.reasons, getattr(self.facts, "reasons", []))],
            "hypotheses": [{"text": t, **h.to_dict()}
                           for t, h in zip(self.hypotheses, getattr(self.facts, "hypotheses", []))],
            "verdict": self.verdict,
            "facts": self.facts_dict(),
            "caveats": list(self.caveats),
            "own_caveats": list(self.own_caveats),
            "evidence": rows(self.evidence),
            "chart_note": self.chart_note,
        }


def rows(df: pd.DataFrame) -> list[dict]:
    return [] if df is None or df.empty else df.astype(object).where(df.notna(), None).to_dict("records")


def merge(facts, text):
    """`text` laid over `facts`: dicts key by key, lists of dicts item by item."""
    if isinstance(facts, dict) and isinstance(text, dict):
        out = dict(facts)
        for k, v in text.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    if isinstance(facts, list) and isinstance(text, list) and len(facts) == len(text):
        return [merge(f, t) for f, t in zip(facts, text)]
    return text
