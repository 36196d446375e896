"""Guard rule 3d's conditions on the run R a rollback undoes: R's records are intact, R was not rolled back already,
and R is still the host's last change, by every record that can tell.

Going back to the point before R is sound only while nothing changed the host after R: a later change's work would
be lost. This machine's ledger says what its own runs did; the host's change record and its history of guarded runs
say what every machine's runs did. ``rollback_source`` asks before anything is sent (so `plan` and the refusal come
early); ``rollback_guard`` asks again with both locks held, so a rollback or a change that finished meanwhile (on this
machine or another) is seen, and none can start until this run ends.

What is NOT a later change: a run that changed nothing (refused before its snapshot, or ended refused or aborted),
`opsguard snapshot` (a snapshot only), and a rollback of R that failed or ended unknown: retrying the rollback is how
R gets rolled back, and its steps look at the host before they act. A rollback of R that succeeded means R was
already rolled back. A rollback of R is known by its ledger record (``rolls_back`` R) or, on the host, by its command
and by having run under R's snapshot.

The ledger's hash chain must hold from R's first record on: R's records (its receipt, its params, the steps it
started) decide what the rollback does and which snapshot authorises it; a record edited by hand breaks the chain
at the line after it, and the rollback's own first record is written before this is checked, so even R's last
record has a successor that vouches for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsguard import ledger as events
from opsguard.errors import Refused
from opsguard.history import HistoryUnreadable, parse_time, read_history
from opsguard.hoststate import read_change_record
from opsguard.inventory import Host
from opsguard.ledger import PREV_HASH, Ledger, parse_record, verify_chain

ROLLBACK_COMMAND = "rollback"
UPGRADE_COMMANDS = ("platform_upgrade", "stack_upgrade")
SNAPSHOT_ONLY_COMMAND = "snapshot"
RESTORE_COMMAND = "restore"
NOTHING_CHANGED = (events.REFUSED, events.ABORTED)
UNSETTLED = (events.FAILED, events.UNKNOWN, "in-progress")


@dataclass(frozen=True)
class RunView:
    """One run of a host in this machine's ledger, as the rollback rules look at it."""

    run_id: str
    command: str | None
    outcome: str | None  # None: the run has no run-ended record (still running, or it died)
    verified: bool  # a snapshot was verified for it (its own or a reused one): it could change the host
    rolls_back: str | None
    restore_started: bool
    user: str | None
    machine: str | None


def runs_of(records: Iterable[Mapping[str, Any]]) -> list[RunView]:
    """Given a host's ledger records (oldest first), return one RunView per run, in the order each first appears."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(str(record["run_id"]), []).append(record)
    return [_view(run_id, own) for run_id, own in grouped.items()]


def _view(run_id: str, own: list[Mapping[str, Any]]) -> RunView:
    def first(event: str) -> Mapping[str, Any] | None:
        return next((record for record in own if record.get("event") == event), None)

    started, ended = first(events.RUN_STARTED) or {}, [r for r in own if r.get("event") == events.RUN_ENDED]
    facts = [record for record in own if record.get("event") == events.RUN_FACTS]
    rolls_back = next((str(record["rolls_back"]) for record in facts if record.get("rolls_back")), None)
    return RunView(
        run_id=run_id,
        command=_text(started.get("command")),
        outcome=str(ended[-1].get("outcome")) if ended else None,
        verified=first(events.SNAPSHOT_VERIFIED) is not None,
        rolls_back=rolls_back,
        restore_started=any(record.get("event") == events.STEP and record.get("step") == "restore"
                            and record.get("phase") == "started" for record in own),
        user=_text(started.get("user")),
        machine=_text(started.get("machine")),
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def rolled_back_by(records: Iterable[Mapping[str, Any]], run: str) -> str | None:
    """Given a host's ledger records and a run, return the run that rolled it back successfully, or None."""
    for view in runs_of(records):
        if view.rolls_back == run and view.outcome == events.OK:
            return view.run_id
    return None


def later_change(records: Iterable[Mapping[str, Any]], run: str) -> str | None:
    """Given a host's ledger records and a run R, return what changed the host after R (one line), or None.

    A failed or unknown rollback of R does not count (see the module docstring); a successful one does not either:
    ``rolled_back_by`` says that, in its own words.
    """
    views = runs_of(records)
    index = next((position for position, view in enumerate(views) if view.run_id == run), None)
    if index is None:
        return None
    for view in views[index + 1 :]:
        if view.command == RESTORE_COMMAND:
            if view.restore_started:
                return f"run {view.run_id} restored it from a provider snapshot after run {run}"
            continue
        if not view.verified or view.outcome in NOTHING_CHANGED or view.command == SNAPSHOT_ONLY_COMMAND:
            continue
        if view.rolls_back == run:
            continue
        if view.command in UPGRADE_COMMANDS:
            return f"run {view.run_id} upgraded it after run {run}: roll that one back first"
        return (f"run {view.run_id} ({view.command or 'a change'}, {view.outcome or 'no end recorded'}) changed it after "
                f"run {run}: run {run} is no longer its last change, and going back to the point before it would lose "
                "that change's work")
    return None


def chain_problem(path: Path, host: str, run: str) -> str | None:
    """Given the ledger file, a host and a run R, return why R's records cannot be trusted, or None.

    Untrusted: the hash chain breaks at or after R's first record, or R's records predate the chain.
    """
    report = verify_chain(path)
    first_line = _first_line_of(path, host, run)
    if first_line is None:
        return None  # no record of R: the caller says so in its own words
    number, record = first_line
    verify = f"run `opsguard ledger --verify` and look at {path}"
    if PREV_HASH not in record:
        return (f"run {run}'s records in {path} predate the ledger's hash chain, so nothing shows they were not edited; "
                f"a rollback cannot rely on them ({verify})")
    broken = [item for item in report.breaks if item.line >= number]
    if broken:
        return (f"the ledger's hash chain is broken at line {broken[0].line} ({broken[0].message}), at or after run "
                f"{run}'s first record (line {number}): its receipt, params and steps cannot be trusted to choose the "
                f"rollback point ({verify})")
    return None


def _first_line_of(path: Path, host: str, run: str) -> tuple[int, dict[str, Any]] | None:
    """Given the ledger file, a host and a run, return (1-based line number, record) of the run's first record."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        record = parse_record(raw) if raw.strip() else None
        if record is not None and record["run_id"] == run and record["host"] == host:
            return number, record
    return None


def check_still_last_change(host: Host, ledger: Ledger, run: str, connection: Any | None) -> None:
    """Given a host, this machine's ledger, the run R a rollback undoes and the guard's SSH connection (None: none),
    return if R may be rolled back now; raise Refused (nothing was changed) naming what stands in the way.

    Called by the guard with both locks held, right before R's snapshot is looked up.
    """
    problem = chain_problem(ledger.path, host.name, run)
    if problem:
        raise Refused(f"host {host.name}: {problem}")
    records = ledger.records(host.name)
    snapshot_id = _verified_snapshot(records, run)
    if snapshot_id is None:
        raise Refused(f"host {host.name}: run {run} is not a run of it with a verified snapshot in this machine's ledger "
                      f"{ledger.path}")
    undone = rolled_back_by(records, run)
    if undone:
        raise Refused(f"host {host.name}: run {run} was already rolled back by run {undone}")
    problem = later_change(records, run)
    if problem:
        raise Refused(f"host {host.name}: {problem}")
    if connection is None:
        return
    known = HostKnowledge(run, snapshot_id, records)
    problem = known.record_problem(read_change_record(connection, host.remote_state))
    if problem is None:
        try:
            problem = known.history_problem(read_history(connection, host.remote_state))
        except HistoryUnreadable as error:
            problem = f"its history of guarded runs cannot be read ({error.reason}), so a later change cannot be ruled out"
    if problem:
        raise Refused(f"host {host.name}: {problem}")


def _verified_snapshot(records: Iterable[Mapping[str, Any]], run: str) -> str | None:
    """Given a host's ledger records and a run, return the id of the snapshot verified for it (not a reused one)."""
    for record in records:
        if record.get("event") == events.SNAPSHOT_VERIFIED and record["run_id"] == run and not record.get("reused_from"):
            receipt = record.get("receipt") or {}
            return str(receipt.get("snapshot_id")) if receipt.get("snapshot_id") is not None else None
    return None


class HostKnowledge:
    """What this machine knows of run R, to judge what the host says about the runs since R (any machine's)."""

    def __init__(self, run: str, snapshot_id: str, records: list[dict[str, Any]]) -> None:
        self.run = run
        self.snapshot_id = snapshot_id
        views = runs_of(records)
        order = [view.run_id for view in views]
        self.before = set(order[: order.index(run)]) if run in order else set()
        self.rollbacks = {view.run_id for view in views if view.rolls_back == run}
        self.started_at = next((parse_time(record.get("time")) for record in records
                                if record["run_id"] == run and record.get("event") == events.SNAPSHOT_VERIFIED), None)

    def record_problem(self, record: Mapping[str, Any] | None) -> str | None:
        """Given the host's change record (None: none), return why it shows a change after R, or None."""
        if record is None:
            return None
        if record.get("note"):  # unreadable_record: a record that cannot be read is unknown, never "none"
            return (f"its change record cannot be read ({record['note']}), so a change after run {self.run} cannot be "
                    "ruled out")
        run_id = str(record.get("run_id", "?"))
        if run_id == self.run:
            return self._snapshot_mismatch("change record", record)
        if run_id in self.before:
            return None  # R kept no record there (the record is older than R)
        return self._later("the host records", run_id, record)

    def history_problem(self, entries: list[dict[str, Any]]) -> str | None:
        """Given the host's history entries (file order), return why they show a change after R, or None."""
        first_seen: dict[str, int] = {}
        last: dict[str, dict[str, Any]] = {}
        for position, entry in enumerate(entries):
            first_seen.setdefault(str(entry["run_id"]), position)
            last[str(entry["run_id"])] = entry
        for run_id, entry in last.items():
            if run_id == self.run:
                mismatch = self._snapshot_mismatch("history of guarded runs", entry)
                if mismatch:
                    return mismatch
                continue
            if run_id in self.before or not self._after_run(first_seen, run_id, entry):
                continue
            problem = self._later("its history of guarded runs has", run_id, entry)
            if problem:
                return problem
        return None

    def _after_run(self, first_seen: Mapping[str, int], run_id: str, entry: Mapping[str, Any]) -> bool:
        if self.run in first_seen:
            return first_seen[run_id] > first_seen[self.run]
        # R left no entry (its history could not be kept): by time, as well as the machines' clocks allow.
        start = parse_time(entry.get("start"))
        return self.started_at is None or start is None or start >= self.started_at

    def _snapshot_mismatch(self, where: str, entry: Mapping[str, Any]) -> str | None:
        recorded = str(entry.get("snapshot_id", ""))
        if recorded and recorded != self.snapshot_id:
            return (f"its {where} gives run {self.run} the snapshot {recorded}, this machine's ledger {self.snapshot_id}: "
                    "one of them was changed; a rollback cannot rely on them")
        return None

    def _later(self, says: str, run_id: str, entry: Mapping[str, Any]) -> str | None:
        outcome = str(entry.get("outcome", events.UNKNOWN))
        command = _text(entry.get("command"))
        if outcome in NOTHING_CHANGED or command == SNAPSHOT_ONLY_COMMAND:
            return None
        is_rollback = command == ROLLBACK_COMMAND and (str(entry.get("snapshot_id")) == self.snapshot_id
                                                      or run_id in self.rollbacks)
        if is_rollback and outcome in UNSETTLED:
            return None  # a failed or unknown rollback of R: retrying it is allowed
        who = f"{entry.get('user', '?')}@{entry.get('machine', '?')}"
        if is_rollback:
            return f"run {self.run} was already rolled back by run {run_id} ({who}, as the host records)"
        return (f"{says} run {run_id} by {who} ({command or 'a change'}, {outcome}) after run {self.run}: run {self.run} "
                "is no longer its last change, and going back to the point before it would lose that change's work")
