"""`opsguard sandbox up|down|status`: the built-in sandbox (simulated providers + local sshd hosts)."""

from __future__ import annotations

from pathlib import Path

import click

from opsguard.output import print_json


@click.group()
def sandbox() -> None:
    """Start or stop the sandbox: a provider simulator on 127.0.0.1 and sshd hosts on 127.0.0.2-4."""


@sandbox.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sandbox directory (default: $OPSGUARD_SANDBOX_DIR or /tmp/opsguard-sandbox).")
def up(directory: Path | None) -> None:
    """Start the sandbox and write its inventory and environment file."""
    from opsguard.sandbox.environment import Sandbox

    box = Sandbox(directory)
    state = box.up()
    click.echo(f"sandbox up in {box.base_dir}: simulator on 127.0.0.1:{state['port']}, "
               f"hosts {', '.join(f'{n} {a}' for n, a in state['hosts'].items())}")
    click.echo(f"use it with:  source {box.env_path}   (then: opsguard hosts)")


@sandbox.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
def down(directory: Path | None) -> None:
    """Stop every sandbox process (by PID) and remove the sandbox directory."""
    from opsguard.sandbox.environment import Sandbox

    box = Sandbox(directory)
    stopped = box.down()
    click.echo(f"sandbox down: stopped {len(stopped)} processes" if stopped else "sandbox: nothing was running")


@sandbox.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, directory: Path | None, as_json: bool) -> None:
    """Say whether the sandbox is up (exit 0) or not (exit 1)."""
    from opsguard.sandbox.environment import Sandbox

    report = Sandbox(directory).status()
    if as_json:
        print_json(report)
    elif report["up"]:
        click.echo(f"sandbox up in {report['base_dir']}: " + ", ".join(report["processes"]))
    else:
        click.echo(f"sandbox not up ({report['base_dir']})")
    ctx.exit(0 if report["up"] else 1)
