"""The tracer's cost per traced event as the bench measured it on this host: the stand-in for
the observer's cost where a run is traced without --profile (with --profile, the profile's
`observer` class measures it point by point).

`python -m netobs.bench` keeps its figures here (`save`); `netobs sweep` copies the entry for
its topology into the manifest as `observer_cost`, and `netobs run` into its result (`entry`),
so that a reader can say "assumed from the bench". The file is
`$NETOBS_LIB_DIR/observer-cost.json`, by default /var/lib/netobs/observer-cost.json: kept
across reboots, unlike the undo log's /run/netobs, and apart from it (NETOBS_STATE_DIR moves
the undo log and its host-wide lock, which must stay shared between runs).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from netobs.errors import CapabilityError

FILE = "observer-cost.json"
DEFAULT_DIR = "/var/lib/netobs"
SCHEMA = 1
# the host facts that decide whether a figure measured here applies to a run
HOST_KEYS = ("hostname", "kernel", "cpu_model", "cores", "virtualized", "bcc_version", "netobs_version")
SAME_HOST_KEYS = ("hostname", "kernel", "cpu_model", "cores")


def path() -> Path:
    return Path(os.environ.get("NETOBS_LIB_DIR") or DEFAULT_DIR) / FILE


def save(figure: dict) -> Path:
    """Keep the bench's figure ({"per", "cpu", "figures": [{topology, msg_size, ns_per_event,
    ci, ...}]}) with the host's facts and the date, replacing the one kept before."""
    from netobs import hostinfo
    from netobs.files import dumps, atomic_write
    from netobs.store import now_iso

    host = hostinfo.host_facts()
    doc = {"schema": SCHEMA, "source": "bench", "measured_at": now_iso(),
           "host": {k: host.get(k) for k in HOST_KEYS}, **figure}
    p = path()
    try:
        p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(p, dumps(doc) + "\n", mode=0o644)
    except OSError as e:
        raise CapabilityError(f"cannot keep the observer's cost in {p}", str(e),
                              "sudo, or NETOBS_LIB_DIR set to a writable directory") from e
    return p


def load() -> dict | None:
    """The kept figure, or None when the bench has not kept one here. Raises ValueError for a
    file that is not one (`entry` says so)."""
    p = path()
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(doc, dict) or doc.get("source") != "bench" or not isinstance(doc.get("figures"), list):
        raise ValueError(f"{p} is not a bench figure")
    return doc


def entry(topology: str) -> dict:
    """What a traced run without --profile records as its observer's cost: the kept figure for
    `topology` (the narrowest interval of its sizes; another topology's, said so, when it has
    none) as {"source": "bench", "measured_at", "host", "same_host", "topology", "msg_size",
    "per", "ns_per_event", "ci", "path"}; or {"source": None, "ns_per_event": None, "ci": None,
    "reason"} when there is none."""
    p = path()
    try:
        doc = load()
    except (OSError, ValueError) as e:
        return {"source": None, "ns_per_event": None, "ci": None, "reason": f"unreadable bench figure: {e}"}
    if doc is None:
        return {"source": None, "ns_per_event": None, "ci": None,
                "reason": f"no bench figure at {p} (`sudo make bench` measures and keeps it)"}
    figs = [f for f in doc["figures"] if f.get("ns_per_event") is not None]
    if not figs:
        return {"source": None, "ns_per_event": None, "ci": None, "reason": f"the bench figure at {p} has no value"}
    here = [f for f in figs if f.get("topology") == topology] or figs

    def width(f):
        ci = f.get("ci")
        return ci[1] - ci[0] if ci else float("inf")

    f = min(here, key=width)
    from netobs import hostinfo
    now = hostinfo.host_facts()
    kept = doc.get("host") or {}
    return {"source": "bench", "measured_at": doc.get("measured_at"), "host": kept,
            "same_host": all(kept.get(k) == now.get(k) for k in SAME_HOST_KEYS),
            "topology": f.get("topology"), "msg_size": f.get("msg_size"), "per": doc.get("per"),
            "ns_per_event": f["ns_per_event"], "ci": f.get("ci"), "path": str(p)}
