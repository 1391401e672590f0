"""The system OpenSSH client, for a server on another host (`--remote [USER@]HOST`).

    conn = Ssh("user@host", config=None)      # the user's ~/.ssh/config, agent, known_hosts
    conn.open()                               # one ControlMaster connection for the whole run
    subprocess.Popen(conn.argv(["netobs", "remote-serve", ...]), ...)   # over that connection
    conn.ensure()                             # a new master when the old one died (a dropped link)
    conn.close()                              # `-O exit`; the master is gone

Security (issue 16): BatchMode=yes (no password or passphrase prompt: a key or agent only),
the host key is verified as the user's ssh does (never StrictHostKeyChecking=no), and every
word of a remote command is quoted with shlex.quote: nothing unquoted reaches the remote shell.
ssh's own failures (exit 255, and 126/127 from the remote shell) become one-line errors that
say what failed, why, and what to do (`classify`).
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from netobs import procfs
from netobs.errors import CapabilityError, NetobsError, UsageError

SSH_EXIT = 255                # ssh's own failure (the remote command's status otherwise)
CONNECT_TIMEOUT_S = 10
OPEN_TIMEOUT_S = 60.0
# A dead peer is noticed within ~15 s even when no packet says so (a cable pulled, a host gone).
ALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")

_HOST_KEY = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
             "No matching host key", "host key is known", "Host key for")
_AUTH = ("Permission denied", "Too many authentication failures", "no mutual signature")
_REACH = ("Connection refused", "Connection timed out", "timed out", "No route to host",
          "Network is unreachable", "Could not resolve hostname", "Name or service not known",
          "Connection closed", "Connection reset", "closed by remote host", "Broken pipe",
          "Timeout, server", "not responding", "kex_exchange_identification")


def quote(argv: list[str]) -> str:
    """The remote command as one shell line, every word quoted (the remote shell splits it
    back into exactly these words)."""
    return shlex.join(str(a) for a in argv)


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in (text or "").splitlines()
            if ln.strip() and not ln.startswith(("Warning: Permanently added", "debug"))]


def classify(code: int | None, stderr: str, host: str, command: str = "netobs") -> NetobsError | None:
    """ssh's exit status and stderr -> the error they mean (None: not ssh's, nor the shell's).

    255 is ssh's own (host key, authentication, connection); 127/126 are the remote shell's
    (the command is not there, or not executable)."""
    lines = _lines(stderr)
    text = " ".join(lines)
    last = lines[-1] if lines else None
    if code == SSH_EXIT:
        if any(s in text for s in _HOST_KEY):
            cause = next((ln for ln in lines if any(s in ln for s in _HOST_KEY)), last)
            return CapabilityError(f"ssh refused the host key of {host}", cause,
                                   f"checking {host}'s key fingerprint, then adding it to known_hosts "
                                   f"(`ssh {host}` once by hand); netobs never turns host key checking off")
        if any(s in text for s in _AUTH):
            cause = next((ln for ln in lines if any(s in ln for s in _AUTH)), last)
            return CapabilityError(f"ssh login to {host} refused", cause,
                                   "a key ssh can use without a prompt (ssh-agent, or IdentityFile in "
                                   "~/.ssh/config): netobs runs ssh with BatchMode=yes")
        if any(s in text for s in _REACH):
            cause = next((ln for ln in lines if any(s in ln for s in _REACH)), last)
            return NetobsError(f"cannot reach {host} over ssh", cause,
                               f"checking that sshd runs on {host} and that `ssh {host} true` works")
        if "Can't open user config file" in text or "Bad configuration option" in text or "terminating" in text:
            return UsageError("ssh refused its configuration", last, "--ssh-config with a file ssh reads (ssh -F)")
        if last is None:   # a session over the master ends so when the master's connection went
            return NetobsError(f"the ssh connection to {host} dropped", "ssh ended with status 255 and no message",
                               f"checking the network and sshd on {host} (`--resume` runs failed points again)")
        return NetobsError(f"ssh to {host} failed", last, f"`ssh -v {host} true` to see why")
    if code == 127:
        return CapabilityError(f"{command} is not on {host}", last or "command not found",
                               f"--remote-netobs PATH (netobs on {host}), or installing the same netobs there")
    if code == 126:
        return CapabilityError(f"{command} cannot run on {host}", last or "not executable",
                               f"--remote-netobs with an executable netobs on {host}")
    return None


def _master_pid(stderr: str) -> int | None:
    m = re.search(r"pid=(\d+)", stderr or "")
    return int(m.group(1)) if m else None


class Ssh:
    """One ControlMaster connection to `host` and the commands run over it."""

    def __init__(self, host: str, config: str | None = None):
        if host.startswith("-"):   # (the parameter table refuses it too): never an ssh option
            raise UsageError(f"bad remote host {host!r}", fix="--remote as [USER@]HOST")
        self.host = host
        self.config = config
        self.ssh = shutil.which("ssh")
        if self.ssh is None:
            raise CapabilityError("no ssh client here", "`ssh` is not on PATH", "installing OpenSSH (openssh-client)")
        self.dir = Path(tempfile.mkdtemp(prefix="netobs-ssh-"))   # 0700: the socket is ours alone
        self.control = self.dir / "cm"
        self.master_pid: int | None = None
        self.master_start: int | None = None
        self.reconnects = 0

    # -- command lines
    def _common(self) -> list[str]:
        out = [self.ssh]
        if self.config:
            out += ["-F", self.config]
        return out + ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", *ALIVE]

    def argv(self, remote_argv: list[str]) -> list[str]:
        """ssh over the master running `remote_argv` on the host, every word quoted."""
        return [*self._common(), "-S", str(self.control), "-o", "ControlMaster=no", self.host, "--", quote(remote_argv)]

    def _control(self, op: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._common(), "-S", str(self.control), "-O", op, self.host],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CONNECT_TIMEOUT_S)

    def hostname(self) -> str:
        """The host name ssh connects to (its config applied: `Host` aliases, `HostName`)."""
        proc = subprocess.run([*self._common(), "-G", self.host], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=CONNECT_TIMEOUT_S)
        if proc.returncode != 0:
            raise classify(SSH_EXIT, proc.stderr, self.host) or NetobsError("ssh -G failed", proc.stderr.strip())
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "hostname" and value:
                return value.strip()
        return self.host.rpartition("@")[2]

    # -- the master connection
    def open(self) -> None:
        """Connect once (authenticated, host key checked); later commands reuse it."""
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        log = self.dir / "master.stderr"
        with open(log, "wb") as err:   # (a file: the backgrounded master keeps its stderr open)
            try:
                proc = subprocess.run([*self._common(), "-M", "-N", "-f", "-o", f"ControlPath={self.control}",
                                       "-o", "ControlPersist=yes", self.host],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                      timeout=OPEN_TIMEOUT_S)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
        text = log.read_text(errors="replace")
        if code != 0:
            raise (classify(SSH_EXIT, text, self.host)
                   or NetobsError(f"ssh to {self.host} failed",
                                  _lines(text)[-1] if _lines(text) else f"no connection in {OPEN_TIMEOUT_S:g} s",
                                  f"`ssh -v {self.host} true` to see why"))
        check = self._control("check")
        self.master_pid = _master_pid(check.stderr)
        self.master_start = procfs.starttime(self.master_pid) if self.master_pid else None

    def alive(self) -> bool:
        return self.control.exists() and self._control("check").returncode == 0

    def ensure(self) -> bool:
        """The master is up: a new one if it died (the network or sshd dropped it); True when
        it had to connect again."""
        if self.alive():
            return False
        self._stop_master()
        self.reconnects += 1
        self.open()
        return True

    def _stop_master(self) -> None:
        if self.control.exists():
            with contextlib.suppress(Exception):
                self._control("exit")
        pid, start = self.master_pid, self.master_start
        if pid and start is not None and procfs.starttime(pid) == start:   # (by PID and start time)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        self.master_pid = self.master_start = None

    def close(self) -> None:
        """`-O exit` (and the master's PID, if it lingers); the private directory removed."""
        self._stop_master()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Ssh":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
