"""zerocopy: why does zero-copy not always give the best throughput?

Where zero_copy won and lost against each baseline, and the mechanism figures that were
measured (completions the kernel copied anyway, completion handling, CPU and syscall time,
copies per byte): nothing is said that the data did not produce. Every other sender that
avoids the send copy (netobs.strategies: io_uring_zc, sendfile, splice) is compared with its
own copy baseline (io_uring_zc with io_uring, the page-reference senders with one_copy),
where both were measured (`pairs`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from netobs import strategies
from netobs.fmt import num, pct, share

from ..answer import Prose
from ..load import Results
from .. import hypotheses as hyp
from . import accounted, prose, zerocopy_why as why
from .common import (LOST, NOT_SIGNIFICANT, WON, Caveat, Facts, Unanswerable, caveats, chart_rows, config_medians, cost_of,
                     median_of, outcome, unanswerable, untested, vs)

NAME = "zerocopy"
TITLE = "Why does zero-copy not always give the best throughput?"
BASELINES = ("two_copy", "one_copy")
# zero_copy-only mechanism figures, and those compared with the baselines (in the verdict's order)
ZC_FIGURES = ("zc_copied_fraction", "zc_deferred_copies_per_send", "errqueue_reads_per_send",
              "zc_notifications_per_msg")
COST_FIGURES = ("cpu_s_per_gb", "cycles_per_byte", "cs_per_mib", "syscall_ns_per_byte", "copies_per_byte")
EVIDENCE_FIGURES = {"zc_copied_fraction": False, "zc_deferred_copies_per_send": False,
                    "errqueue_reads_per_send": False, "zc_notifications_per_msg": False,
                    "cpu_s_per_gb": True, "syscall_ns_per_byte": True, "copies_per_byte": True}
COPIED_MOSTLY = 0.5   # from this copied share on, the kernel is said to have copied the pages anyway
# how each zero-copy sender's completions say the kernel copied the pages after all
COPIED_CODES = {"zero_copy": "SO_EE_CODE_ZEROCOPY_COPIED", "io_uring_zc": "IORING_NOTIF_USAGE_ZC_COPIED"}

# verdict codes
MIXED, NEVER_WON, ALWAYS_WON, NO_DIFFERENCE = "mixed", "never_won", "always_won", "no_difference"
# mechanism codes
COPIED_ON_DELIVERY, COPY_AVOIDED, NOT_MEASURED = "copied_on_delivery", "copy_avoided", "not_measured"


@dataclass
class Extreme:
    """One configuration's comparison: the largest loss or win."""

    msg_size: int
    threads: int
    change_pct: float
    value: float
    ref: float


@dataclass
class Versus:
    """zero_copy against one baseline, over the configurations both have."""

    won: int
    lost: int
    no_significant_difference: int
    configurations: int
    tested: bool
    median_change_pct: float | None
    median_change_pct_by_size: dict[int, float]
    largest_loss: Extreme | None
    largest_win: Extreme | None
    not_significant_change_pct: list[float] | None = None   # [min, max] change where not significant


@dataclass(kw_only=True)
class ZerocopyFacts(Facts):
    baselines: list[str]                    # the first is the one the verdict leads with
    configurations: int
    vs: dict[str, Versus]
    median_wins_from_size: int | None       # the median change is positive from this size on
    first_win_size_by_threads: dict[int, int | None]
    mechanism: dict                         # figure -> median (zero_copy), or {strategy: median}
    mechanism_code: str
    topology: str
    size_range: tuple[int, int]             # the message sizes measured
    pairs: dict = None                      # sender -> its comparison with its copy baseline (see _pairs)
    profile: dict | None = None             # where the client's time went by cost class (zerocopy_why)
    sender: str = "zero_copy"               # the zero-copy sender answered for (zero_copy where measured)
    accounting: dict | None = None          # the cost gap against the main baseline, per side (accounted)
    accounting_scope: tuple | None = None   # (name, hypotheses.Scope) it accounts: the differential profiles' too
    receiver_local: bool | None = True      # the receiver ran on the sender's kernel (None: unknown)

    def fields(self) -> dict:
        return {"configurations": self.configurations,
                "vs": {b: asdict(v) for b, v in self.vs.items()},
                "median_wins_from_size": self.median_wins_from_size,
                "first_win_size_by_threads": self.first_win_size_by_threads,
                "mechanism": self.mechanism, "topology": self.topology,
                "baselines": self.baselines, "mechanism_code": self.mechanism_code,
                "size_range": list(self.size_range), "pairs": self.pairs or {}, "profile": self.profile,
                "sender": self.sender, "receiver_local": self.receiver_local, "accounting": self.accounting}


def _extreme(df: pd.DataFrame, which: str) -> Extreme | None:
    if df.empty:
        return None
    row = df.loc[df.change_pct.idxmin() if which == "min" else df.change_pct.idxmax()]
    return Extreme(int(row.msg_size), int(row.threads), float(row.change_pct), float(row.value), float(row.ref))


def _versus(c: pd.DataFrame) -> Versus:
    return Versus(
        won=int((c.outcome == WON).sum()), lost=int((c.outcome == LOST).sum()),
        no_significant_difference=int((c.outcome == NOT_SIGNIFICANT).sum()),
        configurations=int(len(c)), tested=not untested(c),
        median_change_pct=float(c.change_pct.median()) if len(c) else None,
        median_change_pct_by_size={int(k): float(v) for k, v in c.groupby("msg_size")["change_pct"].median().items()},
        largest_loss=_extreme(c[c.outcome == LOST], "min"), largest_win=_extreme(c[c.outcome == WON], "max"),
        not_significant_change_pct=([float(c[c.outcome == NOT_SIGNIFICANT].change_pct.min()),
                                     float(c[c.outcome == NOT_SIGNIFICANT].change_pct.max())]
                                    if (c.outcome == NOT_SIGNIFICANT).any() else None))


PAIR_FIGURES = ("cpu_s_per_gb", "copies_per_byte", "send_copy_per_byte", "syscall_ns_per_byte")


def _pairs(r: Results) -> dict:
    """Each sender that avoids the send copy, against its copy baseline (both measured):
    throughput won/lost as for zero_copy, and the medians of the cost figures of both."""
    out = {}
    for s in strategies.STRATEGIES:
        if not (s.zero_copy or s.page_refs) or not s.baseline or s.name not in r.impls or s.baseline not in r.impls:
            continue
        c = vs(r, "throughput_gbps", s.name, s.baseline)
        if c.empty:
            continue
        c["outcome"] = [outcome(ch, sig) for ch, sig in zip(c.change_pct, c.significant)]
        costs = {m: {s.name: cost_of(r, s.name, m), s.baseline: cost_of(r, s.baseline, m)}
                 for m in PAIR_FIGURES if m in r.runs}
        out[s.name] = {"baseline": s.baseline, "vs": asdict(_versus(c)), "costs": costs,
                       "zc_copied_fraction": median_of(r, s.name, "zc_copied_fraction") if s.zero_copy else None}
    return out


def sender_of(r: Results) -> tuple[str | None, list[str]]:
    """The zero-copy sender the answer is about and its baselines (the first leads): zero_copy
    against two_copy and one_copy where zero_copy was measured; else the first other zero-copy
    sender (io_uring_zc) against its own copy baseline, then one_copy."""
    if "zero_copy" in r.impls:
        return "zero_copy", [b for b in BASELINES if b in r.impls]
    for s in strategies.STRATEGIES:
        if s.zero_copy and s.name in r.impls:
            return s.name, [b for b in dict.fromkeys((s.baseline, "one_copy")) if b and b in r.impls]
    return None, []


def compute(r: Results) -> Facts:
    sender, bases = sender_of(r)
    if sender is None:
        return unanswerable(r, "no_zero_copy")
    if not bases:
        return unanswerable(r, "no_baseline")
    compared = {base: vs(r, "throughput_gbps", sender, base) for base in bases}
    bases = [base for base in bases if not compared[base].empty]
    if not bases:   # measured, but at no message size x threads a baseline was measured at too
        return unanswerable(r, "no_shared_point")
    ev, summary = None, {}
    for base in bases:
        c = compared[base]
        c["outcome"] = [outcome(ch, s) for ch, s in zip(c.change_pct, c.significant)]
        summary[base] = c
        part = c[["msg_size", "threads", "value", "ref", "change_pct", "p_value", "outcome"]].rename(columns={
            "value": f"{sender}_gbps", "ref": f"{base}_gbps", "change_pct": f"vs_{base}_pct",
            "p_value": f"p_vs_{base}", "outcome": f"outcome_vs_{base}"})
        ev = part if ev is None else ev.merge(part.drop(columns=[f"{sender}_gbps"]), on=["msg_size", "threads"],
                                              how="outer")
    for metric, with_bases in EVIDENCE_FIGURES.items():
        med = config_medians(r, metric)
        for impl in [sender] + (bases if with_bases else []):
            name = f"{impl}_{metric}" if with_bases else metric
            if impl in med.index.get_level_values(0):
                m = med.xs(impl, level="implementation").rename(name).reset_index()
                ev = ev.merge(m, on=["msg_size", "threads"], how="left")
    ev = ev.dropna(axis=1, how="all").sort_values(["msg_size", "threads"]).reset_index(drop=True)

    main = bases[0]
    c = summary[main]
    by_size = c.groupby("msg_size")["change_pct"].median()
    wins_from = next((sz for sz in by_size.index if (by_size.loc[sz:] > 0).all()), None)
    mech: dict = {m: median_of(r, sender, m) for m in ZC_FIGURES}
    for metric in COST_FIGURES:
        mech[metric] = {sender: cost_of(r, sender, metric), **{b: cost_of(r, b, metric) for b in bases}}
    lost = c[c.outcome == LOST]
    if len(lost):
        where = pd.MultiIndex.from_frame(lost[["msg_size", "threads"]])
        mech["cpu_s_per_gb_where_lost"] = {sender: cost_of(r, sender, "cpu_s_per_gb", where=where),
                                           main: cost_of(r, main, "cpu_s_per_gb", where=where)}
    cf = mech["zc_copied_fraction"]
    mechanism_code = NOT_MEASURED if cf != cf else COPIED_ON_DELIVERY if cf >= COPIED_MOSTLY else COPY_AVOIDED
    versus = {b: _versus(cb) for b, cb in summary.items()}
    head = versus[main]
    code = (NO_DIFFERENCE if head.won == head.lost == 0 else NEVER_WON if head.won == 0
            else ALWAYS_WON if head.lost == 0 else MIXED)

    cav = caveats(r, ["cpu_user_s", "trace_client_send_syscall_ns"],
                  zc_columns=["zc_copied", "trace_client_errqueue_reads", "trace_client_zc_deferred_copies"])
    zc_runs = r.runs[r.runs.implementation == sender]
    if zc_runs["zc_completions"].notna().any() and (zc_runs["zc_completions"] == 0).all():
        cav.append(Caveat("no_completions"))
    pairs = _pairs(r)
    costs = why.profile_costs(r, sender, main)
    judged = why.judged(r, c, main, sender)
    scope = why.cost_scope(c, main, sender)
    accounting = accounted.accounting_facts(r, scope) if scope else None
    if r.receiver_local is False:   # the documented break-even holds only where pages can leave by reference
        judged = sorted(judged + [why.break_even(c, main, mech["zc_copied_fraction"])], key=lambda j: hyp.STATUS_ORDER[j.status])
    return ZerocopyFacts(
        code=code, caveats=cav, evidence=ev,
        chart_data=chart_rows(r, ["throughput_gbps", "zc_copied_fraction", "cpu_s_per_gb", "syscall_ns_per_byte",
                                  "copies_per_byte", "errqueue_reads_per_send"]),
        baselines=bases, configurations=int(len(ev)), vs=versus,
        median_wins_from_size=None if wins_from is None else int(wins_from),
        first_win_size_by_threads={int(t): (int(g[g.outcome == WON].msg_size.min()) if (g.outcome == WON).any()
                                            else None) for t, g in c.groupby("threads")},
        mechanism=mech, mechanism_code=mechanism_code, topology=r.topology,
        size_range=(int(r.runs.msg_size.min()), int(r.runs.msg_size.max())), pairs=pairs, profile=costs, sender=sender,
        receiver_local=r.receiver_local,
        accounting=accounting, accounting_scope=(f"{sender}-vs-{main}", scope) if accounting else None,
        hypotheses=judged, reasons=why.reasons(r, versus, main, mech, costs, judged, pairs, sender, accounting))


# --------------------------------------------------------------------------- prose
UNANSWERABLE = {
    "no_zero_copy": lambda f: (f"There are no zero_copy points in these results (strategies: "
                               f"{prose.join(f.implementations)}), so zero-copy cannot be assessed."),
    "no_baseline": lambda f: "The zero-copy sender has no copy baseline (two_copy, one_copy or io_uring) to be compared with.",
    "no_shared_point": lambda f: ("The zero-copy sender was measured at no message size and thread count at which a copy "
                                  "baseline was measured too, so the two cannot be compared."),
}
COST_WORDS = {
    "cpu_s_per_gb": ("s/GB", "Client CPU per GB"),
    "cycles_per_byte": ("cycles/B", "CPU cycles per byte (perf)"),
    "cs_per_mib": ("switches/MiB", "Context switches per MiB (perf)"),
    "syscall_ns_per_byte": ("ns/B", "Time in send syscalls per byte"),
    "copies_per_byte": ("copies/B", "Copies per byte (user copy by construction, kernel copies traced or, for "
                                    "zero-copy pages copied on delivery, from the completion codes)"),
}


COST_SHORT = {"cpu_s_per_gb": "client CPU", "cycles_per_byte": "cycles per byte", "cs_per_mib": "context switches",
              "syscall_ns_per_byte": "send-syscall time", "copies_per_byte": "copies per byte"}


def _finite(x) -> bool:
    return x is not None and x == x


def _extreme_words(e: Extreme, what: str) -> str:
    return (f"{what} {pct(e.change_pct)} at {e.msg_size} B x {prose.threads([e.threads])} "
            f"({num(e.value)} vs {num(e.ref)} Gbps)")


def _comparison(f: ZerocopyFacts) -> list[str]:
    main = f.baselines[0]
    v = f.vs[main]
    s = (f"Against {main}, {f.sender} won in {v.won} and lost in {v.lost} of {v.configurations} size x thread "
         "configurations")
    if v.no_significant_difference:
        lo, hi = v.not_significant_change_pct or (None, None)
        s += (f" ({v.no_significant_difference} showed no significant difference"
              + (f", though its change there was {pct(lo)}" + (f" to {pct(hi)}" if hi != lo else "")
                 if lo is not None else "") + ")")
    if not v.tested:
        s += "; with one run per point these are untested differences"
    out = [s + "."]
    sig = " significant" if v.tested else ""
    extreme = ([_extreme_words(v.largest_loss, f"its largest{sig} loss was")] if v.largest_loss else []) + \
              ([_extreme_words(v.largest_win, "its largest win")] if v.largest_win else [])
    if extreme:
        out.append(extreme[0][0].upper() + "; ".join(extreme)[1:] + ".")
    out.append(f"Median change vs {main} by message size: "
               + ", ".join(f"{sz} B {pct(ch)}" for sz, ch in v.median_change_pct_by_size.items()) + ".")
    if "one_copy" in f.vs and main != "one_copy":
        o = f.vs["one_copy"]
        out.append(f"Against one_copy it won {o.won} and lost {o.lost} of {o.configurations} "
                   f"(median change {pct(o.median_change_pct)}).")
    return out


def _mechanism(f: ZerocopyFacts) -> list[str]:
    m, main = f.mechanism, f.baselines[0]
    out = []
    cf, code = m["zc_copied_fraction"], COPIED_CODES.get(f.sender, "the completion's copied flag")
    if f.mechanism_code == COPIED_ON_DELIVERY and f.receiver_local is False:
        out.append(f"The kernel flagged {share(cf)} of zero-copy completions as copied ({code}, median over "
                   f"configurations) although the receiver was another host: {share(1 - cf)} went out by page "
                   "reference; these results do not say why (a virtual or non-scatter-gather device is one "
                   "possible cause); for those sends the page pinning and the completion handling that "
                   "MSG_ZEROCOPY always does saved no copy.")
    elif f.mechanism_code == COPIED_ON_DELIVERY:
        where = ("remote, but on this kernel: its boot id is this host's" if f.topology == "remote"
                 else f.topology if f.topology != "unknown" else "this topology")
        out.append(f"The kernel flagged {share(cf)} of zero-copy completions as copied "
                   f"({code}, median over configurations): with the receiver on the same "
                   f"host ({where}) the pages were copied anyway, so the page pinning and the completion "
                   "handling that MSG_ZEROCOPY always does saved no copy.")
    elif f.mechanism_code == COPY_AVOIDED:
        out.append(("None" if cf == 0 else f"Only {share(cf)}") + " of zero-copy completions were flagged copied "
                   f"({code}), so {share(1 - cf)} of zero-copy sends did avoid the copy"
                   + (" on the way to the other host." if f.receiver_local is False else "."))
    dc = m["zc_deferred_copies_per_send"]
    if _finite(dc):
        out.append(f"Tracing counted {num(dc)} deferred copies (skb_copy_ubufs) per zero-copy send.")
    eq, nm = m["errqueue_reads_per_send"], m["zc_notifications_per_msg"]
    # one fact, said once: the traced error-queue reads per sendmsg, else the worker's count per message
    part = (f"read {num(eq)} completion notifications per sendmsg (traced)" if _finite(eq) else
            f"read {num(nm)} completion notifications per message" if _finite(nm) else None)
    if part:
        never = "two_copy and one_copy" if f.sender == "zero_copy" else prose.join(f.baselines)
        out.append("Completion handling: the client " + part + f", work {never} never do.")
    if f.accounting:   # the cost figures are the accounting's (its own reason)
        return out
    costs = []
    for metric, (unit, what) in COST_WORDS.items():
        zc, refs = m[metric][f.sender], {b: v for b, v in m[metric].items() if b != f.sender}
        if not _finite(zc):
            continue
        parts = [f"{b} {num(v)}" for b, v in refs.items() if _finite(v)]
        if parts:
            costs.append(f"{COST_SHORT[metric]} {num(zc)} {unit} vs " + ", ".join(parts))
    if costs:
        out.append(f"Means over configurations, {f.sender} vs the baselines: " + "; ".join(costs) + ".")
    where_lost = m.get("cpu_s_per_gb_where_lost")
    if where_lost:
        zc_l, ref_l = where_lost[f.sender], where_lost[main]
        if _finite(zc_l) and _finite(ref_l) and ref_l > 0:
            out.append(f"Where {f.sender} lost, it spent {num(zc_l)} CPU-s/GB against {main}'s {num(ref_l)} "
                       "(means over those configurations).")
    if not out:
        out.append("No mechanism figure was measured (no completion codes, traces, CPU times or perf counters in "
                   "these results), so the data shows where zero-copy lost but not why.")
    return out



def _pair_words(f: ZerocopyFacts) -> list[str]:
    """The other zero-copy senders against their copy baselines (the answer's own is said above):
    each pair's wins and losses, one clause each (their median change, costs and copied fraction
    are in --json: a reason's 6 numbers)."""
    out = []
    for name, p in (f.pairs or {}).items():
        if name == f.sender:
            continue
        v, base = p["vs"], p["baseline"]
        out.append(f"{name} against {base}: won {v['won']} and lost {v['lost']} of {v['configurations']}")
    return ["; ".join(out) + "."] if out else []


def _context(f: ZerocopyFacts) -> str:
    main = f.baselines[0]
    first = f.first_win_size_by_threads
    wins = sorted({v for v in first.values() if v is not None})
    ctx = f"Context, not evidence: {prose.BREAK_EVEN_QUOTE}; "
    if wins:
        ctx += (f"here {f.sender} first beat {main} at {prose.sizes(wins)} (depending on the thread count)"
                if len(wins) > 1 else f"here {f.sender} first beat {main} at {wins[0]} B")
        never = [t for t, v in first.items() if v is None]
        if never:
            ctx += f", and never with {prose.threads(never)}"
    else:
        ctx += f"here it never beat {main} within {f.size_range[0]}-{f.size_range[1]} B"
    return ctx + "."


def render(f: Facts) -> Prose:
    if isinstance(f, Unanswerable):
        return prose.unanswerable(f, UNANSWERABLE[f.code](f))
    main = f.baselines[0]
    table = f.evidence.copy()
    for base in f.baselines:
        table[f"outcome_vs_{base}"] = table[f"outcome_vs_{base}"].map(prose.OUTCOME_WORDS)
    key = [c for c in ["msg_size", "threads", f"{f.sender}_gbps", f"{main}_gbps", f"vs_{main}_pct",
                       f"outcome_vs_{main}", "vs_one_copy_pct" if main != "one_copy" else None,
                       "zc_copied_fraction", f"{f.sender}_cpu_s_per_gb"] if c and c in table]
    comparison = _comparison(f)
    one = [x for x in comparison if x.startswith("Against one_copy it")]
    words = {"comparison": " ".join(x for x in comparison if x not in one) + " [worker]",
             "vs_one_copy": " ".join(one) + " [worker]", "mechanism": " ".join(_mechanism(f)) + " [worker, trace]",
             "pairs": " ".join(_pair_words(f)) + " [worker]", "context": _context(f)}
    tested = next((x for x in f.reasons if x.code == "break_even"), None)
    if tested is not None:
        words["break_even"] = why.break_even_words(tested.numbers)
    reasons = []
    for x in f.reasons:
        if x.code == "profile_costs":
            reasons.append(why.profile_words(x.numbers))
        elif x.code == "accounting":
            reasons.append(accounted.reason_words(f.accounting, f.sender, main, " where it lost" if f.vs[main].lost
                                                  and f.code != "never_won" else ""))
        elif x.code == "where":
            reasons.append(accounted.where_words(f.accounting))
        elif x.code == "accounting_roles":
            reasons.append(accounted.role_words(f.accounting))
        elif x.code == "network":
            reasons.append(accounted.network_words(f.accounting))
        elif x.code == "weak_baseline":
            reasons.append(why.weak_words(x.numbers["points"]))
        elif words.get(x.code, " [worker]").strip() not in ("[worker]", "[worker, trace]"):
            reasons.append(words[x.code])
    return prose.answer(f, why.headline(f), reasons, table, key=key)
