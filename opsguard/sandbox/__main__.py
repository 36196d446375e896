"""`python -m opsguard.sandbox SUBCOMMAND ...`: a small dispatcher for the sandbox's tools.

Sub-commands register themselves in ``SUBCOMMANDS`` (name -> function adding its parser); each
parser sets ``handler`` to a function taking the parsed arguments and returning an exit code.

    serve --scenario FILE [--port N] [--journal FILE]   run the provider simulator in the foreground
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType


def _add_serve(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("serve", help="Run the provider simulator (Vultr + Hostinger) until interrupted.")
    parser.add_argument("--scenario", metavar="FILE", default=None, help="Scenario JSON (default: scenarios/default.json).")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: any free port).")
    parser.add_argument("--journal", metavar="FILE", default=None, help="Append every request to FILE as JSON lines.")
    parser.set_defaults(handler=_serve)


def _serve(arguments: argparse.Namespace) -> int:
    from opsguard.sandbox.simulator import Simulator, load_scenario

    try:
        scenario = load_scenario(arguments.scenario)
    except (OSError, ValueError) as error:
        print(f"opsguard.sandbox: cannot read scenario {arguments.scenario}: {error}", file=sys.stderr)
        return 78
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with Simulator(scenario, port=arguments.port, journal_path=arguments.journal) as simulator:
        # URLs only: the scenario's (fake) tokens stay in the scenario file, as tokens never get printed.
        print(f"export VULTR_API_URL={simulator.vultr_url}", flush=True)
        print(f"export HOSTINGER_API_URL={simulator.hostinger_url}", flush=True)
        print("# tokens: vultr.token and hostinger.token of the scenario file; Ctrl-C stops", flush=True)
        stop.wait()
    return 0


SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {  # type: ignore[type-arg]
    "serve": _add_serve,
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="python -m opsguard.sandbox", description="opsguard sandbox tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Given command-line arguments, run the chosen sub-command and return its exit code."""
    arguments = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    return handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
