"""The command line. The only place in netobs that writes to the terminal.

Each subcommand lives in its own module of this package and exposes a click command
named `command`; this module registers them and turns NetobsError into
`netobs: error: <what>: <cause>; try <fix>` with the error's exit code.
"""
from __future__ import annotations

import importlib
import sys

import click

from netobs import __version__
from netobs.errors import EXIT_INTERRUPTED, NetobsError

# subcommand name -> module (imported only when that subcommand runs, so `netobs --help`
# stays fast and a missing optional dependency only breaks the command that needs it).
COMMANDS = {
    "run": "netobs.cli.run",
    "sweep": "netobs.cli.sweep",
    "import": "netobs.cli.import_",
    "explain": "netobs.cli.explain",
    "report": "netobs.cli.report",
    "compare": "netobs.cli.compare",
    "refine": "netobs.cli.refine",
    "doctor": "netobs.cli.doctor",
    "remote-serve": "netobs.cli.remote_serve",   # hidden (no SHORT_HELP): run by netobs over ssh
}

SHORT_HELP = {
    "run": "Run one experiment (one strategy, size and thread count).",
    "sweep": "Run the whole study matrix and store every point.",
    "import": "Turn a CSV in the study's format into a results directory.",
    "explain": "Answer the study's questions from a results directory.",
    "report": "Write one self-contained HTML report (or PNG/SVG figures).",
    "compare": "Compare two results directories point by point, with significance.",
    "refine": "Measure what the answers left open, into the same results directory.",
    "doctor": "Show what this host can measure and trace.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        module = COMMANDS.get(name)
        if module is None:
            return None
        try:
            return importlib.import_module(module).command
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name == module:
                return None
            raise

    def format_commands(self, ctx, formatter):
        rows = [(name, SHORT_HELP[name]) for name in COMMANDS if name in SHORT_HELP]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="""\b
Examples:
  sudo netobs doctor
  sudo netobs run --strategy zero_copy --msg-size 65536 --threads 2 --duration 2
  sudo netobs sweep --trace -o results/
  netobs explain results/ --question cache
  netobs report results/ -o report.html
  netobs compare results-before/ results-after/
""")
@click.version_option(__version__, prog_name="netobs")
def cli():
    """netobs: what each way of sending bytes really costs on this kernel, and why."""


def error(message: str) -> None:
    click.echo(f"netobs: error: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    try:
        # without standalone mode, click hands back a command's click.exceptions.Exit as its
        # code (`compare --fail-on-regression` exits 1 so); a command that returns gives None
        code = cli.main(args=argv, prog_name="netobs", standalone_mode=False)
    except NetobsError as exc:
        error(exc.message)
        return exc.exit_code
    except click.exceptions.Abort:
        error("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        error("interrupted; cleanup has run")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        error(exc.format_message() + "; see --help")
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
