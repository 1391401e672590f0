"""Errors that end a command with a one-line message and a meaningful exit code.

Exit codes: 0 ok, 1 failure, 2 bad input or missing privilege/capability, 130 interrupted.
Only the CLI prints; everything below raises one of these.
"""

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class NetobsError(Exception):
    """A failure the user can act on: `what: cause; try fix`."""

    exit_code = EXIT_FAILURE

    def __init__(self, what: str, cause: str | None = None, fix: str | None = None):
        self.what, self.cause, self.fix = what, cause, fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        msg = self.what
        if self.cause:
            msg += f": {self.cause}"
        if self.fix:
            msg += f"; try {self.fix}"
        return msg


class UsageError(NetobsError):
    """Bad parameters or input files."""

    exit_code = EXIT_USAGE


class CapabilityError(NetobsError):
    """Missing privilege or host capability (root, perf, BCC, namespaces)."""

    exit_code = EXIT_USAGE


class Interrupted(NetobsError):
    """The user (SIGINT) or the system (SIGTERM) stopped us; cleanup has run."""

    exit_code = EXIT_INTERRUPTED
