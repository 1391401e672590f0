"""The remote topology: the server on another host over ssh (netobs.ssh), the client here."""
from __future__ import annotations

import contextlib
import json
import subprocess
from typing import Any

from pyroute2 import IPRoute

from netobs import __version__, linkstats, netstat, procfs, sysctl
from netobs.errors import CapabilityError, NetobsError
from netobs.params import PARAMS
from netobs.remote_side import PROTOCOL
from netobs.ssh import Ssh, classify
from netobs.topology.base import Topology
from netobs.topology.leftovers import _is_root


class RemoteTopology(Topology):
    """The server on another host, started over ssh (netobs.ssh: one ControlMaster connection
    for the whole run); the client here, in the caller's namespace. The server's side of a
    point (its worker stats, perf, trace, profile, TCP MIB, link counters) comes back from
    `netobs remote-serve` on that host (netobs.remote_side); what is read here is the client's."""

    kind = "remote"

    def __init__(self, remote: str, remote_addr: str | None, remote_netobs: str, ssh_config: str | None,
                 sysctls: dict | None):
        super().__init__(sysctls)
        self.remote, self.remote_addr, self.remote_netobs, self.ssh_config = remote, remote_addr, remote_netobs, ssh_config
        self.ssh = None
        self.hello: dict = {}
        self.client_if: str | None = None

    def _describe_state(self, state: dict) -> None:
        state["remote"] = self.remote

    def setup(self) -> None:
        self._start()
        self.ssh = Ssh(self.remote, self.ssh_config)
        self.ssh.open()
        self._note_master()
        self.server_addr = self.remote_addr or PARAMS.by_name["remote_addr"].check(self.ssh.hostname(), "--remote-addr")
        self.hello = self._hello()
        self.client_addr, self.client_if = _route_to(self.server_addr)
        wanted = self.sysctls_wanted   # the client's host (this one); the remote's are left as they are
        if wanted:
            scopes = sysctl.probe_scopes(list(wanted)) if _is_root() else {n: ("unknown", "not root") for n in wanted}
            self._apply_host_sysctls(wanted, scopes)

    def _note_master(self) -> None:
        """The master in the undo log: a run killed with SIGKILL leaves no connection behind."""
        if self.state is not None and self.ssh.master_pid:
            self.state["children"].append({"pid": self.ssh.master_pid, "starttime": self.ssh.master_start,
                                           "role": "ssh-master"})
            self._save_state()

    def _hello(self) -> dict:
        proc = subprocess.run(self.ssh.argv([self.remote_netobs, "remote-serve", "--hello", "--addr", self.server_addr]),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        err = classify(proc.returncode, proc.stderr, self.remote, self.remote_netobs)
        if err is not None:
            raise err
        try:
            hello = json.loads(proc.stdout.strip().splitlines()[-1])
            version, protocol = hello["netobs_version"], hello["protocol"]
        except (ValueError, IndexError, KeyError, TypeError):
            said = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise CapabilityError(f"{self.remote_netobs} on {self.remote} is not a netobs that can serve netobs "
                                  f"{__version__}", said.removeprefix("netobs: error: "),
                                  f"the same netobs on {self.remote} (--remote-netobs PATH)") from None
        if version != __version__ or protocol != PROTOCOL:
            raise CapabilityError(f"netobs {version} (protocol {protocol}) on {self.remote} does not match netobs "
                                  f"{__version__} (protocol {PROTOCOL}) here", None,
                                  f"installing netobs {__version__} on {self.remote}, or --remote-netobs PATH to it")
        return hello

    def ensure_connection(self) -> None:
        """The ssh connection is up (a new one if the last one dropped: counted in the facts)."""
        if self.closed:
            raise NetobsError("cannot spawn", "the topology is closed")
        if self.ssh.ensure():
            self._note_master()

    def remote_command(self, args: list[str]) -> list[str]:
        """The ssh command running `netobs remote-serve ARGS` over the connection."""
        return self.ssh.argv([self.remote_netobs, "remote-serve", *args])

    def explain(self, code: int | None, stderr: str):
        """ssh's (or the remote shell's) failure as the error it means, or None."""
        return classify(code, stderr, self.remote, self.remote_netobs)

    def server_side(self):
        """The point's server: `netobs remote-serve` on that host, one session per sweep."""
        from netobs.serverside import RemoteServer

        return RemoteServer(self)

    def shares_kernel(self) -> bool:
        """A remote whose host reported this host's boot id is a namespace of this kernel (as
        netobs's own tests make one); one without a boot id counts as another host."""
        here, there = procfs.boot_id(), (self.hello.get("host") or {}).get("boot_id")
        return bool(here and there and here == there)

    @property
    def peer_host(self) -> dict:
        return self.remote_host

    @property
    def remote_host(self) -> dict:
        """The remote host's facts (the manifest's "remote")."""
        return {**(self.hello.get("host") or {}), "user": self.hello.get("user"), "root": self.hello.get("root"),
                "netobs_version": self.hello.get("netobs_version"), "protocol": self.hello.get("protocol"),
                "ssh": self.remote, "address": self.server_addr}

    def _teardown_steps(self) -> list[tuple[str, Any]]:
        return [("stop children", self._stop_children),
                ("close the ssh connection", lambda: self.ssh is not None and self.ssh.close()),
                ("restore host sysctls", self._restore_host_sysctls)]

    def facts(self) -> dict[str, Any]:
        out = super().facts()
        iface = ((self.hello.get("host") or {}).get("interface") or {})
        out.update(namespaces=None, remote=self.remote, links={"client": self.client_if, "server": iface.get("name")},
                   mtu={"client": _mtu_of(self.client_if), "server": iface.get("mtu")},
                   addresses={"client": self.client_addr, "server": self.server_addr},
                   ssh_reconnects=self.ssh.reconnects if self.ssh else 0)
        return out

    def link_stats(self) -> dict[str, dict[str, int]]:
        """The client's link here (the server's comes from the remote side)."""
        if self.client_if is None:
            return {}
        with IPRoute() as ipr:
            return {"client": linkstats.read(ipr, self.client_if)}

    def netstat(self) -> dict[str, dict]:
        """This namespace's counters, the client's (the server's come from the remote side)."""
        return {"client": netstat.read()}


def _route_to(addr: str) -> tuple[str | None, str | None]:
    """(the source address, the interface) this host uses to reach `addr`."""
    with IPRoute() as ipr:
        try:
            route = ipr.route("get", dst=addr)[0]
        except Exception:  # noqa: BLE001 - no route: the client's connect says so, with its errno
            return None, None
        oif = route.get_attr("RTA_OIF")
        links = ipr.get_links(oif) if oif else []
        return route.get_attr("RTA_PREFSRC"), (links[0].get_attr("IFLA_IFNAME") if links else None)


def _mtu_of(ifname: str | None) -> int | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        with open(f"/sys/class/net/{ifname}/mtu") as f:
            return int(f.read())
    return None

