"""Noise, described (issue 27): for every configuration with repeats, the spread of its
repeats and a test for two modes; whether the placement figures separate the modes; the
placement effect measured in the run; and the run-wide items `explain` says once.

Facts first (`describe(results) -> Noise`, numbers and codes), words second (`Noise.items()`).
Reads only the loaded results (runs.csv's `placement` and `place_*` columns, the manifest).

Two modes: the repeats, sorted, are cut at their widest gap; they are two modes when each side
holds at least `MIN_PER_MODE` repeats, the gap is at least `GAP_OVER_WITHIN` times the wider
side's own range (clusters far apart compared with their within-cluster spread; a floor of
`WITHIN_FLOOR` of the median keeps identical repeats from making any gap infinite), and the
modes' medians differ by at least `MIN_SEPARATION` of the overall median. Ashman's D (the
modes' distance over their pooled spread) is given with it.

Placement separates the modes when a placement figure of every repeat of one mode lies
apart from every repeat of the other by at least `SEPARATES` (the shared-CPU share, the share
of receive softirqs on the client's CPUs) or the CPUs the threads ran on differ.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from netobs.figures import shape_label

from .load import CONFIG, PLACE, Results

MIN_PER_MODE = 2
GAP_OVER_WITHIN = 2.0
WITHIN_FLOOR = 0.01
MIN_SEPARATION = 0.10
SEPARATES = 0.3
FEW_CORES = 4          # a host with this many cores or fewer: where two threads run is most of the result
SHARED = 0.5           # a repeat whose client and server shared a CPU at least this share of the window
METRIC = "throughput_gbps"
PLACEMENT_SHARES = ("place_shared_cpu_share", "place_rx_softirq_on_client")
PLACEMENT_SETS = ("place_client_cpus", "place_server_cpus")


@dataclass
class Modes:
    low: list[int]             # repeat numbers of the lower mode
    high: list[int]
    low_median: float
    high_median: float
    gap_over_within: float     # the gap over the wider mode's range (inf: both modes have one value each side)
    ashman_d: float | None
    separated_by: str | None = None      # the placement figure that separates them, or None
    figure_values: dict | None = None    # that figure's values per mode: {"low": [...], "high": [...]}


def spread(values) -> float | None:
    """(max - min) / median of the repeats; None for fewer than two or a median of 0."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) < 2:
        return None
    med = float(np.median(v))
    return float((v.max() - v.min()) / med) if med > 0 else None


def two_modes(values, repeats=None) -> Modes | None:
    """The two modes of a set of repeats (module doc), or None when they are one."""
    v = np.asarray(values, dtype=float)
    ids = list(range(len(v))) if repeats is None else [int(r) for r in repeats]
    keep = ~np.isnan(v)
    v, ids = v[keep], [i for i, k in zip(ids, keep) if k]
    if len(v) < 2 * MIN_PER_MODE:
        return None
    order = np.argsort(v, kind="stable")
    s = v[order]
    gaps = np.diff(s)
    # the widest gap with at least MIN_PER_MODE repeats on each side
    cuts = range(MIN_PER_MODE - 1, len(s) - MIN_PER_MODE)
    cut = max(cuts, key=lambda i: gaps[i])
    lo, hi = s[:cut + 1], s[cut + 1:]
    med = float(np.median(s))
    within = max(lo.max() - lo.min(), hi.max() - hi.min(), WITHIN_FLOOR * med)
    ratio = float(gaps[cut] / within)
    separation = (float(np.median(hi)) - float(np.median(lo))) / med if med > 0 else 0.0
    if ratio < GAP_OVER_WITHIN or separation < MIN_SEPARATION:
        return None
    pooled = math.sqrt((float(lo.var()) + float(hi.var())) / 2)
    d = float(abs(hi.mean() - lo.mean()) / pooled) if pooled > 0 else None
    return Modes(low=sorted(ids[i] for i in order[:cut + 1]), high=sorted(ids[i] for i in order[cut + 1:]),
                 low_median=float(np.median(lo)), high_median=float(np.median(hi)),
                 gap_over_within=ratio, ashman_d=d)


def _separates(rows: pd.DataFrame, modes: Modes) -> None:
    """Which placement figure, if any, tells the modes apart (filled into `modes`)."""
    low, high = rows[rows["repeat"].isin(modes.low)], rows[rows["repeat"].isin(modes.high)]
    for col in PLACEMENT_SHARES:
        if col not in rows or rows[col].isna().any():
            continue
        a, b = low[col].astype(float), high[col].astype(float)
        if a.max() + SEPARATES <= b.min() or b.max() + SEPARATES <= a.min():
            modes.separated_by, modes.figure_values = col, {"low": a.round(3).tolist(), "high": b.round(3).tolist()}
            return
    for col in PLACEMENT_SETS:
        if col not in rows or rows[col].isna().any():
            continue
        a, b = set(low[col]), set(high[col])
        if not a & b:
            modes.separated_by, modes.figure_values = col, {"low": sorted(a), "high": sorted(b)}
            return


@dataclass
class PointNoise:
    config: dict               # implementation, msg_size, threads, fields, nodelay, placement
    repeats: int
    median: float
    spread: float | None
    modes: Modes | None = None
    shared_range: list | None = None     # [min, max] shared-CPU share over the repeats


@dataclass
class Noise:
    metric: str
    controlled: bool | None    # every point pinned (True), some not / none (False), not recorded (None)
    placements: list[str]
    host_cores: int | None
    points: list[PointNoise] = field(default_factory=list)
    placement_effect: dict | None = None   # {"ratio", "how", "config"}: the largest measured in this run
    small_differences: list[dict] = field(default_factory=list)   # strategy gaps below that effect

    @property
    def bimodal(self) -> list[PointNoise]:
        return [p for p in self.points if p.modes is not None]

    def to_dict(self) -> dict:
        return asdict(self) | {"items": self.items()}

    # ---- words, from the facts above alone --------------------------------------------
    def items(self) -> list[dict]:
        """Run-wide items for `explain` (code, data, text), in the order they are said."""
        out = []
        if self.controlled is not True and self.host_cores is not None and self.host_cores <= FEW_CORES:
            out.append({"code": "unpinned_few_cores", "data": self._unpinned_data(), "text": self._unpinned_text()})
        for p in self.bimodal:
            out.append({"code": "bimodal", "data": asdict(p), "text": _bimodal_text(p, self.metric, self.controlled is not None)})
        if self.placement_effect and self.small_differences and self.controlled is not True:
            out.append({"code": "below_placement_effect", "data": {"effect": self.placement_effect,
                                                                  "differences": self.small_differences},
                        "text": self._small_text()})
        elif self.placement_effect:
            e = self.placement_effect
            rest = ("strategies are compared within one placement, never across" if e["how"] == "across placements"
                    else "no two strategies of one configuration differ by less")
            out.append({"code": "placement_effect", "data": e,
                        "text": f"Placement moved {_label(self.metric)} by {e['ratio']:.2f}x in this run "
                                f"({e['how']}, {_config(e['config'])}); {rest}."})
        return out

    def _loose(self) -> list[PointNoise]:
        """The points not pinned: every one where the placement was not recorded, else those of `none`."""
        return self.points if self.controlled is None else [p for p in self.points if p.config.get(PLACE) == "none"]

    def _unpinned_data(self) -> dict:
        spreads = [p.spread for p in self._loose() if p.spread is not None]
        shared = [x for p in self._loose() if p.shared_range for x in p.shared_range]
        return {"host_cores": self.host_cores, "placements": self.placements, "recorded": self.controlled is not None,
                "max_spread": max(spreads) if spreads else None,
                "shared_range": [min(shared), max(shared)] if shared else None}

    def _unpinned_text(self) -> str:
        d = self._unpinned_data()
        mixed = d["recorded"] and set(self.placements) != {"none"}
        what = ("has points not pinned (--placement none)" if mixed else "was not pinned (--placement none)"
                if d["recorded"] else
                "did not record its CPU placement (netobs before issue 27, or an import): assumed not pinned")
        text = (f"This run {what} on a {self.host_cores}-core host, where which CPUs the client and the server "
                "land on can move throughput more than the strategy does")
        measured = []
        if d["shared_range"]:
            measured.append(f"the share of the window a client and a server thread shared a CPU went from "
                            f"{d['shared_range'][0]:.2f} to {d['shared_range'][1]:.2f}")
        if d["max_spread"] is not None:
            worst = max((p for p in self._loose() if p.spread is not None), key=lambda p: p.spread)
            measured.append(f"repeats spread by up to {d['max_spread']:.0%} ({_config(worst.config, d['recorded'])})")
        text += (": here " + " and ".join(measured) if measured else "") + "."
        return text + " Strategy differences in it may be placement's; --placement split (or same) controls it."

    def _small_text(self) -> str:
        e, n = self.placement_effect, len(self.small_differences)
        shown = "; ".join(f"{d['faster']} over {d['slower']} at {d['msg_size']} B x {d['threads']} "
                          f"({d['ratio']:.2f}x)" for d in self.small_differences[:3])
        more = f" and {n - 3} more" if n > 3 else ""
        return (f"Placement moved {_label(self.metric)} by {e['ratio']:.2f}x in this run ({e['how']}, "
                f"{_config(e['config'])}); {n} strategy difference(s) are smaller than that and are not "
                f"properties of the strategies: {shown}{more}.")


def _label(metric: str) -> str:
    return "throughput" if metric == METRIC else metric


def _config(c: dict, placed: bool = True) -> str:
    """A configuration in words; `placed` False: its placement not said (not recorded: the
    loader's default name would be no fact)."""
    shape = "" if (int(c.get("fields", 8)) == 8 and not int(c.get("nodelay", 0))) else \
        f" {shape_label(c.get('fields', 8), c.get('nodelay', 0))}"
    return (f"{c['implementation']}{shape} {int(c['msg_size'])} B x {int(c['threads'])}"
            + (f", placement {c.get(PLACE)}" if placed else ""))


def _bimodal_text(p: PointNoise, metric: str, recorded: bool = True) -> str:
    m = p.modes
    text = (f"{_config(p.config, recorded)}: its {p.repeats} repeats fall into two modes, {m.low_median:.3g} "
            f"(repeats {','.join(map(str, m.low))}) and {m.high_median:.3g} (repeats {','.join(map(str, m.high))}) "
            f"{'Gbit/s' if metric == METRIC else ''}".rstrip()
            + f", {m.gap_over_within:.1f}x apart compared with their own spread")
    if m.separated_by:
        name = {"place_shared_cpu_share": "the share of the window client and server shared a CPU",
                "place_rx_softirq_on_client": "the share of receive softirqs on the client's CPUs",
                "place_client_cpus": "the client's CPUs", "place_server_cpus": "the server's CPUs"}[m.separated_by]
        v = m.figure_values
        return text + f"; {name} separates them ({v['low']} vs {v['high']}): placement did it."
    if p.shared_range is None:
        return text + "; where the threads ran was not recorded, so whether placement did it cannot be told."
    return text + (f"; the placement figures do not separate them (shared-CPU share {p.shared_range[0]:.2f} to "
                   f"{p.shared_range[1]:.2f} across the repeats): not placement, as far as it was measured.")


def _controlled(results: Results) -> bool | None:
    matrix = results.manifest.get("matrix") or {}
    if results.source == "import" or PLACE not in matrix:
        return None
    return bool(len(results.runs)) and bool((results.runs[PLACE] != "none").all())


def describe(results: Results, metric: str = METRIC) -> Noise:
    """The run's noise (module doc), computed once per loaded results (the answers' guard and
    `explain` both ask)."""
    return results.memo(("noise", metric), lambda: _describe(results, metric))


def _describe(results: Results, metric: str) -> Noise:
    runs = results.runs
    noise = Noise(metric=metric, controlled=_controlled(results), placements=results.placements(),
                  host_cores=results.host_cores)
    if runs.empty or metric not in runs:
        return noise
    effects = []
    all_values = runs[metric].astype(float).to_numpy()
    repeats = runs["repeat"].to_numpy()
    shared = (runs["place_shared_cpu_share"].astype(float).to_numpy()
              if "place_shared_cpu_share" in runs else None)
    # one pass over the configurations (positions, not frames: a frame per configuration is
    # most of explain's time at 10,000 points); a configuration's rows only where a figure needs them
    groups = runs.groupby(CONFIG, sort=False).indices
    for key, where in sorted(groups.items(), key=lambda kv: kv[1][0]):   # in order of first row, as groupby
        v = all_values[where]
        known = ~np.isnan(v)
        if known.sum() < 2:
            continue
        config = dict(zip(CONFIG, key))
        values = pd.Series(v)
        p = PointNoise(config=_plain(config), repeats=int(known.sum()), median=float(np.median(v[known])),
                       spread=spread(v.tolist()))
        if shared is not None and not np.isnan(shared[where]).all():
            sh = pd.Series(shared[where])
            p.shared_range = [float(sh.min()), float(sh.max())]
            together, apart = values[sh >= SHARED], values[sh < SHARED]
            if len(together) and len(apart) and min(together.median(), apart.median()) > 0:
                r = max(together.median(), apart.median()) / min(together.median(), apart.median())
                effects.append((float(r), "repeats that shared a CPU against those that did not", p.config))
        p.modes = two_modes(v.tolist(), repeats[where].tolist())
        if p.modes is not None:
            _separates(runs.iloc[where], p.modes)
            if p.modes.separated_by and p.modes.low_median > 0:
                effects.append((p.modes.high_median / p.modes.low_median, "the two modes placement separated",
                                p.config))
        noise.points.append(p)
    effects += _across_placements(runs, metric)
    if effects:
        r, how, config = max(effects, key=lambda e: e[0])
        noise.placement_effect = {"ratio": r, "how": how, "config": config}
        noise.small_differences = _smaller_than(runs, metric, r)
    return noise


def _across_placements(runs: pd.DataFrame, metric: str) -> list:
    """The ratio of medians between placements of one configuration (a sweep over --placement)."""
    out = []
    rest = [c for c in CONFIG if c != PLACE]
    if runs[PLACE].nunique() < 2:   # one placement: no configuration has two to compare
        return out
    for key, rows in runs.groupby(rest, sort=False):
        med = rows.groupby(PLACE)[metric].median().dropna()
        if len(med) >= 2 and med.min() > 0:
            config = _plain(dict(zip(rest, key)) | {PLACE: f"{med.idxmax()} vs {med.idxmin()}"})
            out.append((float(med.max() / med.min()), "across placements", config))
    return out


def _smaller_than(runs: pd.DataFrame, metric: str, effect: float) -> list[dict]:
    """Pairs of strategies at one configuration whose median ratio is below the placement effect."""
    out = []
    group = [c for c in CONFIG if c != "implementation"]
    for key, rows in runs.groupby(group, sort=False):
        med = rows.groupby("implementation")[metric].median().dropna().sort_values(ascending=False)
        names = list(med.index)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if med[b] > 0 and med[a] / med[b] < effect:
                    c = dict(zip(group, key))
                    out.append({"faster": a, "slower": b, "ratio": float(med[a] / med[b]),
                                "msg_size": int(c["msg_size"]), "threads": int(c["threads"]),
                                "placement": c[PLACE]})
    return out


def _plain(config: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}


def _asked(results: Results) -> str:
    matrix = results.manifest.get("matrix") or {}
    if results.source == "import" or PLACE not in matrix:
        return "not recorded (assumed not pinned)"
    asked = matrix[PLACE]
    return ",".join(asked) if isinstance(asked, (list, tuple)) else str(asked)


def _measured_shared(results: Results) -> float | None:
    col = results.runs.get("place_shared_cpu_share")
    return None if col is None or col.isna().all() else round(float(col.median()), 2)


def placement_differences(base: Results, new: Results) -> list[dict]:
    """For `compare`'s manifest differences: the placement asked where a side did not record
    it (the matrix comparison lists the rest), and the measured shared-CPU share where the two
    runs' medians are far apart ({what, base, new}, like every manifest difference)."""
    out = []
    a, b = _asked(base), _asked(new)
    if a != b and (PLACE not in (base.manifest.get("matrix") or {}) or PLACE not in (new.manifest.get("matrix") or {})):
        out.append({"what": "placement", "base": a, "new": b})
    sa, sb = _measured_shared(base), _measured_shared(new)
    if sa is not None and sb is not None and abs(sa - sb) >= SEPARATES:
        out.append({"what": "placement measured: median share of the window client and server shared a CPU",
                    "base": sa, "new": sb})
    return out


# ---- hooks the answers use ----------------------------------------------------------------------

def shared_cpu(results: Results, points) -> float | None:
    """The measured shared-CPU share (place_shared_cpu_share) of `points` ((strategy, size,
    threads)): the median over them of each one's median over repeats; None where not recorded."""
    runs = results.runs
    col = "place_shared_cpu_share"
    if col not in runs or runs[col].isna().all() or not points:
        return None
    med = runs.groupby(["implementation", "msg_size", "threads"])[col].median()
    vals = [v for p in points if (v := med.get(tuple(p))) is not None and v == v]
    return float(np.median(vals)) if vals else None


def placement_numbers(results: Results, scope) -> dict:
    """For a cause that placement moves (softirq on the sender, cross-CPU wake-ups): the measured
    shared-CPU share of the scope's two sides (`{"shared_cpu", "shared_cpu_ref"}`), where recorded."""
    at, ref = shared_cpu(results, scope.at), shared_cpu(results, scope.ref)
    return {} if at is None or ref is None else {"shared_cpu": at, "shared_cpu_ref": ref}


BELOW_EFFECT = "below_placement_effect"


def guard(results: Results, answers) -> None:
    """No answer calls a strategy gap smaller than the run's measured placement effect a property
    of the strategy: where the run's placement was not controlled, each answer whose strategies
    and configurations include such a gap gets a caveat that says so (code BELOW_EFFECT)."""
    from .questions.common import Caveat

    d = describe(results)
    if d.controlled is True or not d.placement_effect or not d.small_differences:
        return
    for a in answers:
        ev = a.evidence
        if ev is None or ev.empty:
            continue
        named = set(ev["implementation"]) if "implementation" in ev else set()
        named |= {s for s in results.impls if any(str(c).startswith(f"{s}_") for c in ev.columns)}
        where = ({(int(s), int(t)) for s, t in zip(ev["msg_size"], ev["threads"])}
                 if {"msg_size", "threads"} <= set(ev.columns) else None)
        placed = a.shape.split("placement ", 1)[1] if "placement " in a.shape else None
        mine = [x for x in d.small_differences if {x["faster"], x["slower"]} <= named
                and (where is None or (x["msg_size"], x["threads"]) in where)
                and (d.controlled is None or x["placement"] == "none")   # (a pinned placement is controlled)
                and (placed is None or x["placement"] == placed)]
        if not mine:
            continue
        e = d.placement_effect
        a.facts.caveats.append(Caveat(BELOW_EFFECT, {"effect": e, "differences": mine}))
        first = mine[0]
        text = (f"Placement moved {_label(d.metric)} by {e['ratio']:.2f}x in this run, not controlled; "
                f"{len(mine)} gap(s) here are smaller, e.g. {first['faster']} over {first['slower']} at "
                f"{first['msg_size']} B x {first['threads']} ({first['ratio']:.2f}x): not properties of the strategies.")
        a.prose.caveats.append(text)
        if a.prose.own_caveats is not None:
            a.prose.own_caveats.append(text)
