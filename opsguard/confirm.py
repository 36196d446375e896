"""Confirmation before a change: a person on a terminal says yes, or a script passes --yes."""

from __future__ import annotations

import sys

import click

from opsguard.errors import Refused


def confirm_change(host: str, summary: list[str], *, assume_yes: bool, typed: str | None = None) -> None:
    """Given a host, lines saying what will happen, and --yes, return when confirmed; raise Refused if not.

    SAFETY: with no terminal and no --yes there is nobody to ask, so the answer is no — before
    any snapshot is requested or anything touched. With ``typed`` the person must type that word
    (the host name) instead of y.
    """
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"host {host}: no confirmation: not on a terminal and --yes not given; refused, nothing was changed")
    for line in summary:
        click.echo(line, err=True)
    if typed is not None:
        answer = click.prompt(f"Type the host name ({typed}) to go ahead", default="", show_default=False, err=True)
        if answer.strip() != typed:
            raise Refused(f"host {host}: confirmation not given (typed {answer.strip()!r}); refused, nothing was changed")
        return
    if not click.confirm("Go ahead?", default=False, err=True):
        raise Refused(f"host {host}: declined at the confirmation; refused, nothing was changed")
