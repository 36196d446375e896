"""The runner: executes a Plan on one host — preflight read-only, then the change inside the guard.

Order, and why:
1. preflight steps in a READ-ONLY session (no snapshot yet): a host that is not fit for the change
   (full disk, a process down) is refused before anything is snapshotted or changed (exit 3);
2. ``snapshot_guard`` upgrades the same SSH connection to a change session once the snapshot is
   verified; the change steps run in order and stop at the first failure (exit 1, rollback advice);
3. verify steps run read-only inside the same session; a failed verification is a failed change.
Facts read by earlier steps (pm2 names, ports, paths) fill ``{{name}}`` placeholders of later ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsguard.durations import format_duration
from opsguard.errors import ConfigError, OpsguardError, OutcomeUnknown, Refused, StepFailed
from opsguard.guard import ChangeSession, ReadOnlySession, read_only_session, rollback_guard, snapshot_guard
from opsguard.inventory import Host, Inventory
from opsguard.output import HostLinePrinter, log, paint
from opsguard.plan import Plan, Step, render
from opsguard.progress import SnapshotWaitReporter
from opsguard.tables import Table, print_table

RESULT_OK = "ok"
RESULT_FAILED = "failed"
RESULT_UNKNOWN = "unknown"
RESULT_SKIPPED = "not run"
RESULT_COLOURS = {RESULT_OK: "green", RESULT_FAILED: "red", RESULT_UNKNOWN: "yellow"}
ROLLBACK_PLAYBOOK = "rollback"  # its plans run only as the rollback of the run they undo (guard rule 3d)


def result_colour(column: int, cell: str) -> str | None:
    """Given a summary cell (column 1 is the result), return its colour on a terminal."""
    return RESULT_COLOURS.get(cell, "dim") if column == 1 else None


@dataclass
class StepRecord:
    """How one step went."""

    phase: str
    name: str
    mutates: bool
    result: str = RESULT_SKIPPED
    duration: float = 0.0
    detail: str = ""


@dataclass
class RunSummary:
    """What a playbook run did on one host, for the closing table and --json."""

    host: str
    playbook: str
    steps: list[StepRecord] = field(default_factory=list)
    snapshot_id: str | None = None
    run_id: str | None = None
    downtime: float | None = None
    channels_downtime: float | None = None  # first service stop until every WhatsApp channel is back
    outcome: str = RESULT_SKIPPED

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {
            "host": self.host,
            "playbook": self.playbook,
            "outcome": self.outcome,
            "snapshot_id": self.snapshot_id,
            "run_id": self.run_id,
            "downtime_seconds": round(self.downtime, 3) if self.downtime is not None else None,
            "channels_downtime_seconds": round(self.channels_downtime, 3) if self.channels_downtime is not None else None,
            "steps": [vars(step) for step in self.steps],
        }


class StepCheckFailed(StepFailed):
    """A step ran but its output did not pass its check (or its poll ran out of time)."""


class PlanRunner:
    """Runs one plan on one host, printing progress with a host prefix."""

    def __init__(
        self,
        plan: Plan,
        host: Host,
        inventory: Inventory,
        *,
        reason: str,
        overwrite_snapshot: bool = False,
        stream: bool = True,
        confirm: Callable[[], None] | None = None,
        json_output: bool = False,
        rollback_of: str | None = None,
    ) -> None:
        self.plan = plan
        self.host = host
        self.inventory = inventory
        self.reason = reason
        self.overwrite_snapshot = overwrite_snapshot
        self.stream = stream
        self.confirm = confirm
        self.json_output = json_output
        # A rollback of run R: under rollback_guard (guard rule 3d), never under a plain snapshot_guard.
        self.rollback_of = rollback_of
        self.facts: dict[str, str] = {key: str(value) for key, value in plan.params.items() if value is not None}
        self.summary = RunSummary(host=host.name, playbook=plan.playbook)
        self._downtime_started: float | None = None
        self._rollback_printed = False

    # -- public ---------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run preflight, then (for change plans) the guarded change and verification; return the summary.

        Raise Refused if preflight fails (nothing snapshotted or changed), StepFailed if a change or
        verify step fails (rollback advice printed), OutcomeUnknown if the host stops answering.
        """
        self._check_rollback_link()
        self.summary.steps = [StepRecord(phase, step.name, step.mutates) for phase, steps in self.plan.phases() for step in steps]
        try:
            with read_only_session(self.host, inventory=self.inventory) as session:
                self._phase(session, "preflight", self.plan.preflight)
                if self.plan.kind != "change":
                    self._phase(session, "verify", self.plan.verify)
                    self.summary.outcome = RESULT_OK
                    return self.summary
                self._check_copy_room()
                if self.confirm:
                    self.confirm()
                self._guarded(session)
        except OutcomeUnknown:
            self.summary.outcome = RESULT_UNKNOWN
            raise
        except OpsguardError:
            self.summary.outcome = RESULT_FAILED
            raise
        finally:
            self.print_summary()
        self.summary.outcome = RESULT_OK
        return self.summary

    # -- phases ---------------------------------------------------------------------------------

    def _check_rollback_link(self) -> None:
        """Before anything is sent: the rollback playbook runs only as the rollback of the run its plan undoes.

        SAFETY: run like any playbook it would skip guard rule 3d (R's snapshot, R still the host's last change).
        """
        undone = self.plan.params.get("rolled_back_run") if self.plan.playbook == ROLLBACK_PLAYBOOK else None
        if self.rollback_of is None and undone is None:
            return
        if self.plan.playbook != ROLLBACK_PLAYBOOK or self.rollback_of != undone:
            raise ConfigError(f"host {self.host.name}: the rollback playbook runs only through `opsguard rollback "
                              f"{self.host.name} [--run RUN]`, as the rollback of the run its plan undoes ({undone or 'none'})")

    def _guarded(self, session: ReadOnlySession) -> None:
        reporter = SnapshotWaitReporter(self.host.name)
        try:
            self._change_under_guard(session, reporter)
        except OpsguardError as error:
            if self._rollback_printed:
                # The plan's rollback path (printed) already ends with the provider snapshot: say it once.
                error.advice = [line for line in error.advice if "rollback point: snapshot" not in line]
            raise
        finally:
            reporter.close()

    def _check_copy_room(self) -> None:
        """Before the snapshot: refuse when the copies off the host (estimated in preflight) would not fit locally."""
        from opsguard.copies import check_room

        for step in self.plan.change:
            if step.download is not None:
                check_room(self.inventory.settings.state_dir, self.host.name, step.download, self.facts)

    def _record_run_facts(self, change: ChangeSession) -> None:
        """Before the first change step: put the run's params and the facts preflight read into the ledger (the
        previous tree's path, the dump file, the image digests: what `opsguard rollback` of this run needs); a
        rollback's record names the run it undoes."""
        from opsguard import ledger as events

        facts = {key: value for key, value in self.facts.items() if key not in self.plan.params}
        link = {"rolls_back": self.rollback_of} if self.rollback_of else {}
        change.note(events.RUN_FACTS, playbook=self.plan.playbook, params=dict(self.plan.params), facts=facts, **link)

    def _open_guard(self, session: ReadOnlySession, reporter: SnapshotWaitReporter) -> AbstractContextManager[ChangeSession]:
        if self.rollback_of is not None:
            # Rule 3d is checked inside, with the locks held; a new snapshot only if the provider says R's is gone.
            return rollback_guard(self.host, rolled_back_run=self.rollback_of, reason=self.reason, inventory=self.inventory,
                                  command=self.plan.playbook, overwrite_snapshot=self.overwrite_snapshot,
                                  on_progress=reporter)
        return snapshot_guard(self.host, reason=self.reason, inventory=self.inventory, session=session,
                              overwrite_snapshot=self.overwrite_snapshot, on_progress=reporter, command=self.plan.playbook)

    def _change_under_guard(self, session: ReadOnlySession, reporter: SnapshotWaitReporter) -> None:
        with self._open_guard(session, reporter) as change:
            self.summary.snapshot_id = change.receipt.snapshot_id
            self.summary.run_id = change.run_id
            self.facts["snapshot_id"] = change.receipt.snapshot_id
            reporter.done(f"{self.host.name}: snapshot {change.receipt.snapshot_id} verified complete; starting the change")
            self._record_run_facts(change)
            try:
                self._phase(change, "change", self.plan.change)
                self._phase(change, "verify", self.plan.verify)
            except BaseException:
                # Once a mutating step started, whatever stops the run (a failed step, a lost host, a
                # refusal on reconnect, Ctrl-C) leaves the host part-changed: the operator needs the way back.
                if change.started:
                    self.print_rollback()
                raise

    def _phase(self, session: ReadOnlySession | ChangeSession, phase: str, steps: tuple[Step, ...]) -> None:
        for step in steps:
            record = self._record(phase, step)
            started = time.monotonic()
            if step.downtime == "starts" and self._downtime_started is None:
                self._downtime_started = started
            log(f"{self.host.name}: [{phase}] {step.name}")
            try:
                self._execute(session, step)
            except StepFailed as error:
                record.result, record.detail = RESULT_FAILED, str(error)
                record.duration = time.monotonic() - started
                if not isinstance(session, ChangeSession):
                    raise Refused(f"host {self.host.name}: {phase} step {step.name!r} failed: {error} "
                                  "(no snapshot was taken)") from None
                if step.mutates and error.exit_status is not None and error.exit_status not in step.ok_codes:
                    session.mark_failed(step.name, recorded=True)  # the session's ledger record already says it failed
                elif step.mutates:
                    session.mark_failed(step.name, str(error))  # exit accepted, its output check failed
                else:
                    session.mark_failed(f"{phase}: {step.name}", str(error))
                raise
            except OutcomeUnknown as error:
                record.result, record.detail = RESULT_UNKNOWN, str(error)
                record.duration = time.monotonic() - started
                raise
            record.result = RESULT_OK
            record.duration = time.monotonic() - started
            if step.downtime == "ends" and self._downtime_started is not None:
                self.summary.downtime = time.monotonic() - self._downtime_started
                log(f"{self.host.name}: service back after {format_duration(self.summary.downtime)} of downtime")
            if step.downtime == "channels-back" and self._downtime_started is not None:
                self.summary.channels_downtime = time.monotonic() - self._downtime_started
                log(f"{self.host.name}: every WhatsApp channel back after {format_duration(self.summary.channels_downtime)}")

    def _record(self, phase: str, step: Step) -> StepRecord:
        for record in self.summary.steps:
            if record.phase == phase and record.name == step.name and record.result == RESULT_SKIPPED:
                return record
        record = StepRecord(phase, step.name, step.mutates)
        self.summary.steps.append(record)
        return record

    # -- one step -------------------------------------------------------------------------------

    def _execute(self, session: ReadOnlySession | ChangeSession, step: Step) -> None:
        if step.download is not None:
            if not isinstance(session, ChangeSession):
                raise Refused(f"host {self.host.name}: step {step.name!r} copies off the host, which runs after the snapshot")
            from opsguard.copies import fetch

            fetch(session, step.download, state_dir=self.inventory.settings.state_dir, step=step.name)
            return
        if step.upload is not None:
            if not isinstance(session, ChangeSession):
                raise Refused(f"host {self.host.name}: step {step.name!r} uploads a file but this session is read-only")
            local, remote = (render(part, self.facts) for part in step.upload)
            session.upload(Path(local), remote, name=step.name)
            return
        try:
            command = render(step.shell_text(), self.facts)
        except KeyError as missing:
            raise StepFailed(f"host {self.host.name}: step {step.name!r} needs the fact {missing} that no earlier step read",
                             step=step.name) from None
        if step.poll is None:
            self._attempt(session, step, command, final=True)
            return
        deadline = time.monotonic() + step.poll.within
        passing_since: float | None = None
        while True:
            try:
                passed = self._attempt(session, step, command, final=False)
            except OutcomeUnknown:
                if not step.poll.reconnect or time.monotonic() >= deadline or not isinstance(session, ChangeSession):
                    raise
                # Expected while the host reboots: wait, re-open the connection, look again.
                log(f"{self.host.name}: [{step.name}] host not answering (rebooting?); reconnecting")
                time.sleep(step.poll.every)
                with suppress(OutcomeUnknown):
                    session.reconnect()
                continue
            now = time.monotonic()
            if passed:
                passing_since = passing_since if passing_since is not None else now
                if now - passing_since >= step.poll.hold:
                    return
            else:
                passing_since = None
            if now >= deadline:
                # One last attempt that raises with the real reason.
                self._attempt(session, step, command, final=True)
                if step.poll.hold and (passing_since is None or now - passing_since < step.poll.hold):
                    raise StepCheckFailed(
                        f"host {self.host.name}: step {step.name!r} did not keep passing for {format_duration(step.poll.hold)}",
                        step=step.name,
                    )
                return
            time.sleep(step.poll.every)

    def _attempt(self, session: ReadOnlySession | ChangeSession, step: Step, command: str, *, final: bool) -> bool:
        """Run the step once; return whether it passed. With ``final``, raise StepFailed when it did not."""
        # Only change steps stream their output (npm, apt...): preflight and verify are quiet checks
        # whose output matters only when they fail, and then the failure message carries its tail.
        on_output = self._printer() if self.stream and step.mutates else None
        result = session.run(
            command,
            mutates=step.mutates,
            name=step.name,
            timeout=step.timeout,
            ok_codes=step.ok_codes,
            sudo_user=step.sudo_user,
            on_output=on_output,
        )
        problem: str | None = None
        if result.exit_status not in step.ok_codes:
            tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
            problem = f"exited {result.exit_status}" + (f": {' / '.join(tail)}" if tail else "")
        elif step.check is not None:
            problem = step.check.test(result.stdout)
        if problem is None and step.facts is not None:
            try:
                self.facts.update({key: str(value) for key, value in step.facts.parse(result.stdout).items()})
            except (ValueError, KeyError) as error:
                problem = f"could not read {', '.join(step.facts.names)} from its output: {error}"
        if problem is None:
            return True
        if final:
            raise StepCheckFailed(f"host {self.host.name}: step {step.name!r} {problem}", step=step.name,
                                  exit_status=result.exit_status)
        return False

    def _printer(self) -> Callable[[str, str], None]:
        # With --json, stdout carries only the JSON summary: a host's output goes to stderr.
        return HostLinePrinter(self.host.name, stdout_allowed=not self.json_output)

    # -- reporting ------------------------------------------------------------------------------

    def print_rollback(self) -> None:
        """Print the plan's rollback advice with facts and the snapshot receipt filled in."""
        if not self.plan.rollback:
            return
        self._rollback_printed = True
        out = sys.stderr
        print(paint(f"{self.host.name}: ROLLBACK — the change did not complete. Rollback path:", "red", out), file=out)
        lines = [fill(line, self.facts) for line in self.plan.rollback]
        for line in lines:
            print(f"  {line}", file=out)
        # The plan's advice usually ends with the restore line already; print ours only when it does not.
        if self.summary.snapshot_id and not any("opsguard restore" in line for line in lines):
            print(f"  provider snapshot (last resort): opsguard restore {self.host.name} --snapshot {self.summary.snapshot_id}",
                  file=out)
        out.flush()

    def print_summary(self) -> None:
        """Print each step with its phase, duration and result, and the measured downtime."""
        out = sys.stderr
        ran = [record for record in self.summary.steps if record.result != RESULT_SKIPPED]
        not_run = len(self.summary.steps) - len(ran)
        if not ran:
            return
        title = f"{self.host.name}: summary of {self.plan.playbook}"
        plain = [title]
        for record in ran:
            result = paint(f"{record.result:8}", RESULT_COLOURS.get(record.result, "dim"), out)
            plain.append(f"  {record.phase:9} {result} {format_duration(record.duration):>8}  {record.name}")
        rows = [[record.phase, record.result, format_duration(record.duration), record.name] for record in ran]
        print_table(Table(["PHASE", "RESULT", "TIME", "STEP"], rows, title=title, right=frozenset({2}),
                          colour=result_colour), stream=out, plain=plain)
        if not_run:
            print(f"  ({not_run} later steps not run)", file=out)
        if self.summary.downtime is not None:
            print(f"  downtime (first service stop to healthy): {format_duration(self.summary.downtime)}", file=out)
        if self.summary.channels_downtime is not None:
            print(f"  downtime until every WhatsApp channel is back: {format_duration(self.summary.channels_downtime)}", file=out)
        if self.summary.snapshot_id:
            print(f"  snapshot: {self.summary.snapshot_id} (run {self.summary.run_id})", file=out)
        out.flush()


def fill(line: str, facts: dict[str, str]) -> str:
    """Given a rollback advice line, return it with {{facts}} and {snapshot_id} filled where known."""
    try:
        text = render(line, facts)
    except KeyError:
        text = line
    return text.replace("{snapshot_id}", facts.get("snapshot_id", "<snapshot id>"))
