"""The TCP MIB (netobs.netstat) of each role's namespace, read before and after the point.
Result keys: "netstat" ({role: change per counter}) and "netstat_missing" (what could not be read)."""
from __future__ import annotations

from netobs import netstat
from netobs.figures import ROLES
from netobs.observers import Observer

_UNREAD = {"counters": {}, "missing": {}}


class Netstat(Observer):
    name = "netstat"
    keys = ("netstat", "netstat_missing")

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return True

    def begin(self, files) -> None:
        self.before, self.after = self.place.netstat(), None

    def end(self) -> None:
        self.after = self.place.netstat()

    def collect(self, reports: dict[str, dict], files) -> dict:
        return _section({r: (self.before[r], self.after[r]) for r in self.roles})

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        if theirs is None:   # not read there: every counter missing, with netstat's reason
            theirs = _section({"server": (_UNREAD, _UNREAD)})
        out = dict(mine)
        net, gaps = {}, {}
        for role in ROLES:
            for part in (mine, theirs):
                if role in (part.get("netstat") or {}):
                    net[role] = part["netstat"][role]
                    if (part.get("netstat_missing") or {}).get(role):
                        gaps[role] = part["netstat_missing"][role]
                    break
        out["netstat"] = net
        out.pop("netstat_missing", None)
        if gaps:
            out["netstat_missing"] = gaps
        return out


def _section(pairs: dict[str, tuple[dict, dict]]) -> dict:
    out = {"netstat": {r: netstat.delta(b, a) for r, (b, a) in pairs.items()}}
    gaps = {r: m for r, (b, a) in pairs.items() if (m := netstat.missing(b, a))}
    if gaps:
        out["netstat_missing"] = gaps
    return out
