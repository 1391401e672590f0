"""The structured answer every question function returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Answer:
    """One study question answered from the data.

    verdict:  a few sentences built from the measured numbers (never canned text);
    evidence: the table the verdict is derived from (one row per configuration or group);
    caveats:  what limits the answer (missing counters, one repeat, oversubscription, failures);
    chart_data: tidy rows the question's chart draws (may equal `evidence`); empty when there
                is nothing to draw, with `chart_note` saying why;
    facts:    the key numbers of the verdict, machine-readable (for --json and for checks);
    key_columns: the evidence columns a compact text table shows (all when empty).
    """

    question: str
    title: str
    verdict: str
    evidence: pd.DataFrame
    caveats: list[str] = field(default_factory=list)
    chart_data: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart_note: str | None = None
    facts: dict = field(default_factory=dict)
    key_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def rows(df: pd.DataFrame) -> list[dict]:
            return [] if df is None or df.empty else df.astype(object).where(df.notna(), None).to_dict("records")

        return {
            "question": self.question,
            "title": self.title,
            "verdict": self.verdict,
            "facts": self.facts,
            "caveats": list(self.caveats),
            "evidence": rows(self.evidence),
            "chart_note": self.chart_note,
        }
