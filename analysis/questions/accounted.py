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


CONCENTRATED = 0.75   # one group of configurations holding this share of a gap: the answer says where
DIMS = (("msg_size", 1, "{} B"), ("threads", 2, "{} threads"), ("implementation", 0, "{}"))


def accounting_facts(r, scope) -> dict | None:
    """Per side (both ends, client, server) the accounting of `scope`; None unprofiled. The
    first side's entry also says where its gap sits when one group of configurations holds
    CONCENTRATED of it (the cost aggregate is a mean over configurations: a small size's large
    CPU-s/GB can be most of it)."""
    out = {}
    for role in acc.SCOPES:
        a = acc.account(r, scope, role)
        if a is not None:
            out[role] = a.to_dict() | {"largest": [[c, s] for c, s in a.largest(TOP)]}
    if out:
        role = "both" if "both" in out else next(iter(out))
        # no "where" for a gap that is about nothing: its parts cancel, and a share of ~0 is any number
        where = None if out[role]["negligible"] else _where(r, scope, role)
        if where is not None:
            out[role]["where"] = where
    return out or None


def _where(r, scope, role: str) -> dict | None:
    """The group (configurations sharing one size, thread count or strategy) that holds the
    largest share of the gap, and the gap of the others with their largest cause; None where
    no group holds CONCENTRATED of it, or the points do not pair one to one."""
    from ..hypotheses import Scope

    pairs = list(zip(scope.at, scope.ref))
    if len(pairs) < 2 or len(scope.at) != len(scope.ref):
        return None
    gaps = []
    for a, b in pairs:
        x = acc.account(r, Scope((a,), (b,), scope.kind, scope.metric), role)
        if x is None:
            return None
        gaps.append(x.total)
    total = sum(gaps)
    if not total:
        return None
    best = None
    for dim, i, fmt_ in DIMS:
        values = {p[0][i] for p in pairs}
        if len(values) < 2:
            continue
        for v in values:
            inside = [k for k, p in enumerate(pairs) if p[0][i] == v]
            held = sum(gaps[k] for k in inside) / total
            if best is None or held > best[0] + 1e-12:
                best = (held, dim, v, fmt_, inside)
    if best is None or best[0] < CONCENTRATED:
        return None
    held, dim, v, fmt_, inside = best
    rest = [p for k, p in enumerate(pairs) if k not in inside]
    others = acc.account(r, Scope(tuple(a for a, _ in rest), tuple(b for _, b in rest), scope.kind, scope.metric), role)
    top = others.largest(1) if others is not None and not others.negligible else []
    return {"dim": dim, "value": v, "name": fmt_.format(v), "share": held, "configurations": len(inside),
            "others": len(rest), "others_total": None if others is None else others.total,
            "others_largest": [[c, sh] for c, sh in top]}


def where_words(facts: dict) -> str | None:
    """'96% of the gap is at 4096 B; the other 2 configurations: +0.303 CPU-s/GB, deferred copy 63%'
    (<= 6 numbers)."""
    side = facts.get("both") or facts.get("client") or {}
    w = side.get("where")
    if not w:
        return None
    s = f"Where the gap is: {share(w['share'])} of it at {w['name']}"
    if w["others_total"] is not None:
        s += f"; the other {w['others']} configurations average {w['others_total']:+.3g} CPU-s/GB"
        if w["others_largest"]:
            c, sh = w["others_largest"][0]
            s += f", {acc.CLASS_WORDS[c]} {share(sh)}"
    return s + " [profile]."


def _causes(side: dict, n: int = TOP) -> str:
    return ", ".join(f"{acc.CLASS_WORDS[c]} {share(s)}" for c, s in side["largest"][:n])


def _numbered(*names) -> int:
    """How many numbers the names of the two sides hold ("2 threads" against "1": 2)."""
    return sum(len(re.findall(r"\d+", n or "")) for n in names)


def gap_phrase(facts: dict, at: str | None, ref: str, n: int | None = None, where: bool = False) -> str:
    """'<at> cost X CPU-s/GB more than <ref>: <cause> s%, ...' (both ends where profiled; `at`
    None: "it"). Sides named by numbers leave room for fewer causes (a reason's 6 numbers).
    `where` (a headline's: headline_gap): a gap that one group of configurations holds
    (where_words) says so, '(91% of it at 4096 B)'."""
    side = facts.get("both") or facts.get("client")
    w = side.get("where") if where else None
    if n is None:
        n = max(1, TOP - max(0, _numbered(at, ref) - 1))
    total = side["total_cpu_s_per_gb"]
    if side["negligible"]:
        return f"{at or 'it'} cost about the same CPU per GB as {ref} ({num(total)} CPU-s/GB)"
    more = "more" if total >= 0 else "less"
    s = f"{at or 'it'} cost {num(abs(total))} CPU-s/GB {more} than {ref}"
    if w:
        s += f" ({share(w['share'])} of it at {w['name']})"
    causes = _causes(side, n)
    named = sum(v for _, v in side["largest"][:n])
    if causes and named > 1 + 1e-9:   # the named causes exceed the gap: what offset them, so the parts add up
        causes += f", other classes {share(1 - named)}"
    return s + (f": {causes}" if causes else "")


HEADLINE_WORDS = 30   # a headline is one sentence of at most this many words


def headline_gap(prefix: str, facts: dict, at: str | None, ref: str) -> str:
    """`prefix` + the gap phrase, as a headline: where one group of configurations holds the gap
    it says so, with as many causes as fit in HEADLINE_WORDS (at least one); without the where
    note only if even one cause does not fit."""
    side = facts.get("both") or facts.get("client")
    default = max(1, TOP - max(0, _numbered(at, ref) - 1))
    tries = [(True, n) for n in range(default, 0, -1)] if side.get("where") else []
    for where, n in tries + [(False, default)]:
        s = prefix + gap_phrase(facts, at, ref, n=n, where=where) + "."
        if len(s.split()) <= HEADLINE_WORDS:
            return s
    return s


def reason_words(facts: dict, at: str, ref: str, where: str = "") -> str:
    """The both-ends gap, its largest causes and the residual (<= 6 numbers: fewer causes
    where the names of the sides hold numbers)."""
    side = facts.get("both") or facts.get("client")
    ends = "both ends" if "both" in facts else "the client"
    # "untested" leads: a reason cut to its numbers (prose.fit) drops trailing clauses, never this
    untested = "" if side.get("tested") else " (untested: no repeats)"
    s = f"Accounted over {ends}{where}{untested}: " + gap_phrase(facts, at, ref)
    res = side.get("residual_share")
    if res is not None and res == res and not side["negligible"]:
        s += f"; left in classes no hypothesis names: {share(res)}"
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
        out += [1 - sum(v for _, v in side["largest"][:k]) for k in range(1, len(side["largest"]) + 1)]
        w = side.get("where")
        if w:
            out += [w["share"], w["others"], w["configurations"]] + ([w["value"]] if w["dim"] != "implementation" else [])
            out += [x for x in (w["others_total"],) if x is not None] + [sh for _, sh in w["others_largest"]]
        for v in (side.get("network") or {}).values():
            out += [v["at"], v["ref"]]
    return out
