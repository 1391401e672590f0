"""The accounting in the answers: a comparison's or a step's CPU-s/GB gap, its largest causes
with their shares, per role, and the network figures beside it (facts and words).

    facts = accounting_facts(r, scope)           # {"both": {...}, "client": {...}, "server": {...}}
    gap_phrase(facts, "zero_copy", "two_copy")   # "zero_copy cost 1.08 CPU-s/GB more than two_copy: TCP send path 36%, ..."

The numbers are analysis.accounting's (COST_AGGREGATE); a phrase shows at most 4 numbers and
a reason at most 6, so the headline's numbers are all in the reasons.
"""
from __future__ import annotations

import re

from netobs.fmt import num, share

from .. import accounting as acc

TOP = 3   # causes a headline names


def accounting_facts(r, scope) -> dict | None:
    """Per side (both ends, client, server) the accounting of `scope`; None unprofiled."""
    out = {}
    for role in acc.SCOPES:
        a = acc.account(r, scope, role)
        if a is not None:
            out[role] = a.to_dict() | {"largest": [[c, s] for c, s in a.largest(TOP)]}
    return out or None


def _causes(side: dict, n: int = TOP) -> str:
    return ", ".join(f"{acc.CLASS_WORDS[c]} {share(s)}" for c, s in side["largest"][:n])


def _numbered(*names) -> int:
    """How many numbers the names of the two sides hold ("2 threads" against "1": 2)."""
    return sum(len(re.findall(r"\d+", n or "")) for n in names)


def gap_phrase(facts: dict, at: str | None, ref: str, n: int | None = None) -> str:
    """'<at> cost X CPU-s/GB more than <ref>: <cause> s%, ...' (both ends where profiled; `at`
    None: "it"). Sides named by numbers leave room for fewer causes (a reason's 6 numbers)."""
    if n is None:
        n = max(1, TOP - max(0, _numbered(at, ref) - 1))
    side = facts.get("both") or facts.get("client")
    total = side["total_cpu_s_per_gb"]
    if side["negligible"]:
        return f"{at or 'it'} cost about the same CPU per GB as {ref} ({num(total)} CPU-s/GB)"
    more = "more" if total >= 0 else "less"
    s = f"{at or 'it'} cost {num(abs(total))} CPU-s/GB {more} than {ref}"
    causes = _causes(side, n)
    return s + (f": {causes}" if causes else "")


def reason_words(facts: dict, at: str, ref: str, where: str = "") -> str:
    """The both-ends gap, its largest causes and the residual (<= 6 numbers: fewer causes
    where the names of the sides hold numbers)."""
    side = facts.get("both") or facts.get("client")
    ends = "both ends" if "both" in facts else "the client"
    s = f"Accounted over {ends}{where}: " + gap_phrase(facts, at, ref)
    res = side.get("residual_share")
    if res is not None and res == res and not side["negligible"]:
        s += f"; left in classes no hypothesis names: {share(res)}"
    if not side.get("tested"):
        s += " (untested: no repeats)"
    return s + " [profile]."


def role_words(facts: dict) -> str | None:
    """Each role's gap and its two largest causes (<= 6 numbers)."""
    parts = []
    for role in ("client", "server"):
        side = facts.get(role)
        if side is None:
            continue
        parts.append(f"{role} {side['total_cpu_s_per_gb']:+.3g} CPU-s/GB ({_causes(side, 2) or 'no rising class'})")
    return ("By side: " + "; ".join(parts) + " [profile].") if parts else None


def network_words(facts: dict) -> str | None:
    """The network figures that differ NETWORK_FACTOR x or more (at most 3 figures, 6 numbers)."""
    side = facts.get("both") or facts.get("client") or {}
    net = side.get("network") or {}
    parts = [f"{acc.NETWORK[k][0]} {num(v['at'])} vs {num(v['ref'])}" for k, v in net.items() if v["differs"]][:3]
    if not parts:
        return None
    return f"Beside it, {acc.NETWORK_FACTOR:g}x or more apart: " + ", ".join(parts) + " [netstat, profile]."


def numbers_in(facts: dict) -> list[float]:
    """Every number the phrases above can print (for the property tests)."""
    out = []
    for side in facts.values():
        out += [side["total_cpu_s_per_gb"], abs(side["total_cpu_s_per_gb"])]
        out += [s for _, s in side["largest"]]
        if side.get("residual_share") is not None:
            out.append(side["residual_share"])
        for v in (side.get("network") or {}).values():
            out += [v["at"], v["ref"]]
    return out
