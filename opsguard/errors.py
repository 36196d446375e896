"""One exception hierarchy for opsguard; each class carries the exit code docs/design.md assigns.

Only ``opsguard/cli.py`` turns these into process exit codes. Everything else raises.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNKNOWN = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_CONFIG = 78

# Several hosts in one command: the worst wins, in this order (docs/design.md "Exit codes").
_SEVERITY = {EXIT_OK: 0, EXIT_REFUSED: 1, EXIT_UNKNOWN: 2, EXIT_FAILED: 3, EXIT_CONFIG: 4, EXIT_INTERNAL: 5}


def worst_exit_code(codes: list[int]) -> int:
    """Given the exit codes of several hosts, return the worst one (78 > 1 > 4 > 3 > 0)."""
    if not codes:
        return EXIT_OK
    return max(codes, key=lambda code: _SEVERITY.get(code, 5))


class OpsguardError(Exception):
    """Base of every error opsguard raises on purpose. ``str(error)`` is the one-line message.

    Raise sites give only the ``reason`` (what went wrong, naming host, step, path or variable).
    What it means for the host is derived in ONE place, not written by hand at each raise site:
    ``Refused`` always ends "refused, nothing was changed" (the guard turns a refusal raised after a
    change started into an outcome-unknown error, so this stays true), and the guard sets
    ``changed`` on every error that ends a guarded run (False: no mutating step had started) and
    adds ``advice`` lines (the rollback point) once a change had started.
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.reason = message
        self.changed: bool | None = None  # None: not about a guarded change
        self.advice: list[str] = []

    def __str__(self) -> str:
        return self.reason + self.outcome_text()

    def outcome_text(self) -> str:
        """Return what this error means for the host, as a suffix of its message ("" when nothing is known)."""
        if self.changed is False:
            return "; nothing was changed"
        if self.changed is True and isinstance(self, OutcomeUnknown):
            return "; the change had started, so its outcome is unknown"
        return ""

    def lines(self) -> list[str]:
        """Given this error, return the lines to print (one per problem, then the advice)."""
        return [str(self), *self.advice]


class ConfigError(OpsguardError):
    """The inventory, the environment (a missing token) or an argument is wrong. Exit 78."""

    exit_code = EXIT_CONFIG


class LedgerWriteError(OpsguardError):
    """A ledger record could not be written whole and fsync'ed (disk full, read-only, I/O error). Exit 78.

    The message names the ledger path and the reason. A caller that has already started a change
    decides what the run's exit code becomes; on its own this is the environment's fault (78).
    """

    exit_code = EXIT_CONFIG


class InventoryError(ConfigError):
    """Every problem found in one inventory file; each problem is one path-qualified line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)

    def lines(self) -> list[str]:
        return list(self.problems)


class Refused(OpsguardError):
    """The guard said no before anything was changed. Exit 3."""

    exit_code = EXIT_REFUSED

    def outcome_text(self) -> str:
        return "; refused, nothing was changed"


class HostKeyRejected(Refused):
    """The SSH host key is unknown or changed: strict checking refuses to connect."""


class LockHeld(Refused):
    """Another opsguard run holds the host's lock."""


class SnapshotNotVerified(Refused):
    """The snapshot could not be created or verified complete; no change may run."""


class SnapshotGone(Refused):
    """The snapshot a rollback would rely on is no longer at the provider: the rollback needs a new one."""


class ReceiptExpired(Refused):
    """The snapshot receipt is older than ``receipt_ttl`` or for another host."""


class ReadOnlyViolation(Refused):
    """A read-only session was asked to run a mutating step."""


class OutcomeUnknown(OpsguardError):
    """A host or API could not be reached, or a connection dropped mid-change. Exit 4."""

    exit_code = EXIT_UNKNOWN


class ConnectionDropped(OutcomeUnknown):
    """The SSH connection dropped while a command ran: it may or may not have taken effect."""


class StepTimeout(OutcomeUnknown):
    """A remote step ran past its timeout: it may still be running on the host."""


class Interrupted(OpsguardError, KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped a guarded run. Exit 130 before a change started, 4 (outcome unknown) after.

    It is a KeyboardInterrupt too, so code that handles Ctrl-C handles it.
    """

    def __init__(self, message: str, *, changed: bool) -> None:
        super().__init__(message)
        self.changed = changed
        self.exit_code = EXIT_UNKNOWN if changed else EXIT_INTERRUPTED

    def outcome_text(self) -> str:
        if self.changed:
            return "; the change had started, so its outcome is unknown"
        return super().outcome_text()


class Failed(OpsguardError):
    """A check failed or a change step failed. Exit 1."""

    exit_code = EXIT_FAILED


class StepFailed(Failed):
    """A step exited with a code it does not accept, or its check did not pass."""

    def __init__(self, message: str, *, step: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.exit_status = exit_status


class ProviderError(OpsguardError):
    """A provider API answered with an error. Carries provider, HTTP status, message, correlation id.

    The message never contains the API token: clients build it only from the response body.
    """

    exit_code = EXIT_UNKNOWN

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        correlation_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.provider_message = message
        self.correlation_id = correlation_id
        self.hint = hint
        parts = [f"{provider} API"]
        if status is not None:
            parts.append(f"HTTP {status}")
        text = f"{' '.join(parts)}: {message}"
        if correlation_id:
            text += f" (correlation_id {correlation_id})"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class ProviderUnreachable(ProviderError):
    """The provider API could not be reached (connection error, timeout, 5xx/429 after retries). Exit 4."""


class ProviderAuthError(ProviderError):
    """The provider rejected the token (401/403): a configuration problem. Exit 78."""

    exit_code = EXIT_CONFIG


class ProviderNotFound(ProviderError):
    """The provider says the object does not exist (404)."""

    exit_code = EXIT_CONFIG
