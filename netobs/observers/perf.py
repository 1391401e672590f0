"""`perf stat` around the workers (netobs.perf.PerfStat): the client's counts cover its measured
window (it opens and closes perf's counters through the fifos), the server's its whole life
(it cannot tell when the client's window opens). Result keys: "perf" (client), "server_perf".
Its files (perf's raw output, the control fifos) are the point's, named by the store
(netobs.store.PointFiles.perf_output, perf_fifo)."""
from __future__ import annotations

from netobs.observers import Observer

KEYS = {"client": "perf", "server": "server_perf"}
ROLE_OF = {key: role for role, key in KEYS.items()}


class Perf(Observer):
    name = "perf"
    keys = ("perf", "server_perf")

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return bool(spec.perf and spec.events) and (role == "client" or spec.perf_server)

    def begin(self, files) -> None:
        from netobs.perf import PerfStat

        self.stats = {}
        for role in self.roles:
            self.stats[role] = PerfStat(list(self.spec.events), files, role, window=role == "client")

    def wrap(self, role: str, argv: list[str]) -> list[str]:
        return self.stats[role].argv(argv) if role in self.stats else argv

    def worker_values(self, role: str) -> dict:
        return self.stats[role].worker_values if role in self.stats else {}

    def collect(self, reports: dict[str, dict], files) -> dict:
        return {KEYS[role]: self.stats[role].result(window_s=(reports[role] or {}).get("window_s") if role == "client"
                                                     else None)
                for role in self.roles}

    def cleanup(self) -> None:
        for stat in getattr(self, "stats", {}).values():
            stat.cleanup()

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        out = dict(mine)
        if theirs is None:
            out[KEYS["server"]] = {"events": {}, "skipped": why}
            return out
        for key, value in theirs.items():
            if isinstance(value, dict) and value.get("raw_path") and key in ROLE_OF:
                # perf's own output came back with the point's files, under the store's name
                value = {**value, "raw_path": str(files.at(files.perf_output(ROLE_OF[key], value.get("format"))))}
            out[key] = value
        return out
