"""A second "host" for the remote tests: a real OpenSSH sshd in a network namespace of the
test's own, joined to the test's namespace by a veth pair.

    with Sshd(tmp_path) as host:          # as root; Debian's openssh-server
        host.addr                         # 10.213.0.2 (the test's side is 10.213.0.1)
        host.ssh_config                   # for --ssh-config: key, known_hosts, StrictHostKeyChecking yes
        host.pids("netobs.workerproc")    # processes inside the namespace whose command line has it
        host.stop_sshd(); host.start()    # the connection dropped; sshd back

The namespace (`sshdtest-<hex>`) and the veth (`shd<hex>-h`/`-r`) are named so netobs's own
cleanup (nob<pid>-<token>-s|c) never takes them; sshd is stopped by PID and the namespace and
veth removed at the end, even when the test failed.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HOST_ADDR, REMOTE_ADDR, PREFIX = "10.213.0.1", "10.213.0.2", 30   # not netobs's 10.0.0.0/24
READY_S = 10.0
ALIAS = "sshd-test-host"   # a `Host` alias of the ssh config: ssh knows its address, DNS does not


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _keygen(path: Path) -> str:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netobs-test", "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


class Sshd:
    def __init__(self, tmp: Path):
        self.tmp = Path(tmp)
        token = secrets.token_hex(3)
        self.ns = f"sshdtest-{token}"
        self.veth_host, self.veth_remote = f"shd{token}-h", f"shd{token}-r"
        self.addr = REMOTE_ADDR
        self.proc: subprocess.Popen | None = None
        self.log = self.tmp / "sshd.log"
        self._made_run_sshd = False
        self._ns_made = False

    # -- keys and files
    def _files(self) -> None:
        host_key, user_key = self.tmp / "host_key", self.tmp / "id_ed25519"
        host_pub = _keygen(host_key)
        user_pub = _keygen(user_key)
        (self.tmp / "authorized_keys").write_text(user_pub + "\n")
        self.known_hosts = self.tmp / "known_hosts"
        self.known_hosts.write_text(f"{self.addr} {' '.join(host_pub.split()[:2])}\n")
        self.sshd_config = self.tmp / "sshd_config"
        self.sshd_config.write_text("\n".join([
            f"ListenAddress {self.addr}:22", f"HostKey {host_key}", f"AuthorizedKeysFile {self.tmp}/authorized_keys",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "PidFile none", "LogLevel INFO", "MaxSessions 50", "MaxStartups 50",
        ]) + "\n")
        self.ssh_config = self.tmp / "ssh_config"
        self.ssh_config.write_text("\n".join([
            f"Host {self.addr} {ALIAS}", f"  HostName {self.addr}", "  User root", f"  IdentityFile {user_key}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {self.known_hosts}", "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes", "  LogLevel ERROR",
        ]) + "\n")

    def wrong_host_key(self) -> None:
        """known_hosts now holds another key for the address (a changed or spoofed host)."""
        other = _keygen(self.tmp / "other_host_key")
        self.known_hosts.write_text(f"{self.addr} {' '.join(other.split()[:2])}\n")

    # -- the namespace
    def _network(self) -> None:
        _run("ip", "netns", "add", self.ns)
        self._ns_made = True
        _run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_remote)
        _run("ip", "link", "set", self.veth_remote, "netns", self.ns)
        _run("ip", "addr", "add", f"{HOST_ADDR}/{PREFIX}", "dev", self.veth_host)
        _run("ip", "link", "set", self.veth_host, "up")
        _run("ip", "-n", self.ns, "addr", "add", f"{self.addr}/{PREFIX}", "dev", self.veth_remote)
        _run("ip", "-n", self.ns, "link", "set", self.veth_remote, "up")
        _run("ip", "-n", self.ns, "link", "set", "lo", "up")

    def _ns_inode(self) -> int | None:
        with contextlib.suppress(OSError):
            return os.stat(f"/run/netns/{self.ns}").st_ino
        return None

    def pids(self, needle: str | None = None, comm: str | None = None) -> list[int]:
        """Processes in the namespace (whose command line contains `needle`, whose name is `comm`)."""
        ino, out = self._ns_inode(), []
        if ino is None:
            return []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}/ns/net").st_ino != ino:
                    continue
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                name_ = Path(f"/proc/{name}/comm").read_text().strip()
            except OSError:
                continue
            if state != "Z" and (needle is None or needle in cmd) and (comm is None or comm == name_):
                out.append(int(name))
        return out

    # -- sshd
    def start(self) -> None:
        listening = threading.Event()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, SSHD, "-D", "-e", "-f", str(self.sshd_config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def drain(stream, log) -> None:   # sshd logs every connection: never let its pipe fill
            with open(log, "ab") as f:
                for line in stream:
                    f.write(line)
                    f.flush()
                    if b"Server listening on" in line:
                        listening.set()
            listening.set()   # it ended: the wait below says so

        threading.Thread(target=drain, args=(self.proc.stderr, self.log), daemon=True).start()
        if not listening.wait(READY_S) or self.proc.poll() is not None:
            raise RuntimeError(f"sshd did not start: {self.log.read_text(errors='replace')[-500:]}")
        with socket.create_connection((self.addr, 22), timeout=READY_S) as s:   # and it answers
            if not s.recv(64).startswith(b"SSH-"):
                raise RuntimeError("sshd sent no SSH banner")

    def stop_sshd(self, sig: int = signal.SIGKILL) -> None:
        """Every sshd of the namespace (the listener and each connection's), by PID: the
        connection drops as when the remote host's sshd goes away."""
        for pid in self.pids(comm="sshd"):   # (a connection's sshd renames itself "sshd: root@notty")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None
        deadline = time.monotonic() + 5
        while self.pids(comm="sshd") and time.monotonic() < deadline:
            time.sleep(0.02)

    def drop_connections(self) -> None:
        """Every connection's sshd killed, the listener kept: a transient drop."""
        listener = self.proc.pid if self.proc is not None else None
        for pid in self.pids(comm="sshd"):
            if pid != listener:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # -- context manager
    def __enter__(self) -> "Sshd":
        try:
            if not os.path.isdir("/run/sshd"):   # sshd's privilege separation directory (Debian)
                os.makedirs("/run/sshd", mode=0o755)
                self._made_run_sshd = True
            self._files()
            self._network()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stop_sshd()
        for pid in self.pids():   # anything else the test left in the namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", self.veth_host)
        if self._ns_made:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "del", self.ns)
        if self._made_run_sshd:
            with contextlib.suppress(OSError):
                os.rmdir("/run/sshd")
