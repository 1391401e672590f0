"""Each role's link counters (netobs.linkstats: its veth end, lo, or a remote's data interface),
read before and after the point. Result key: "link" ({role: change per counter})."""
from __future__ import annotations

from netobs import linkstats
from netobs.observers import Observer


class Link(Observer):
    name = "link"
    keys = ("link",)

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return True

    def begin(self, files) -> None:
        self.before, self.after = self.place.link_stats(), None

    def end(self) -> None:
        self.after = self.place.link_stats()

    def collect(self, reports: dict[str, dict], files) -> dict:
        return {"link": linkstats.delta({r: v for r, v in self.before.items() if r in self.roles},
                                        {r: v for r, v in self.after.items() if r in self.roles})}
