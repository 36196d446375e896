"""opsguard.errors: each error's exit code (docs/design.md) and the worst-of-several ordering 78 > 1 > 4 > 3 > 0."""

from __future__ import annotations

import itertools

import pytest

from opsguard import errors
from opsguard.errors import worst_exit_code

# docs/design.md "Exit codes": commands that cover several hosts exit with the worst.
ORDER_WORST_FIRST = [78, 1, 4, 3, 0]


@pytest.mark.parametrize(
    ("worse", "better"),
    [pytest.param(a, b, id=f"{a}-beats-{b}") for a, b in itertools.combinations(ORDER_WORST_FIRST, 2)],
)
def test_worst_exit_code_prefers_worse_code_in_either_order(worse: int, better: int) -> None:
    assert worst_exit_code([worse, better]) == worse
    assert worst_exit_code([better, worse]) == worse


def test_worst_exit_code_orders_every_permutation_of_all_codes() -> None:
    for permutation in itertools.permutations(ORDER_WORST_FIRST):
        codes = list(permutation)
        while codes:
            assert worst_exit_code(codes) == min(codes, key=ORDER_WORST_FIRST.index)
            codes.pop()


def test_worst_exit_code_returns_ok_when_no_hosts() -> None:
    assert worst_exit_code([]) == 0


def test_worst_exit_code_ranks_internal_error_above_configuration() -> None:
    assert worst_exit_code([78, 70, 1]) == 70


def test_every_refusal_exits_3_and_says_nothing_was_changed() -> None:
    """Behaviour, not constants: whatever the kind of refusal, the process exit code and the message agree."""
    refusals = [errors.Refused, errors.HostKeyRejected, errors.LockHeld, errors.SnapshotNotVerified,
                errors.ReceiptExpired, errors.ReadOnlyViolation]
    for kind in refusals:
        error = kind("host chat: why")
        assert (error.exit_code, str(error)) == (3, "host chat: why; refused, nothing was changed"), kind


def test_error_says_what_it_means_for_the_host_once_the_guard_knows() -> None:
    unknown = errors.ConnectionDropped("host chat: the connection dropped")
    assert str(unknown) == "host chat: the connection dropped"
    unknown.changed = False
    assert str(unknown).endswith("; nothing was changed")
    unknown.changed = True
    assert str(unknown).endswith("; the change had started, so its outcome is unknown")
    unknown.advice = ["chat: rollback point: snapshot s-1"]
    assert unknown.lines()[-1] == "chat: rollback point: snapshot s-1"


def test_interrupted_exits_130_before_a_change_and_4_after() -> None:
    assert errors.Interrupted("host chat: interrupted", changed=False).exit_code == 130
    after = errors.Interrupted("host chat: interrupted during step 'x'", changed=True)
    assert after.exit_code == 4 and "outcome is unknown" in str(after)
    assert isinstance(after, KeyboardInterrupt)


def test_inventory_error_lines_returns_one_line_per_problem() -> None:
    error = errors.InventoryError(["inventory.toml: a: x", "inventory.toml: b: y"])
    assert error.lines() == ["inventory.toml: a: x", "inventory.toml: b: y"]
    assert str(error) == "inventory.toml: a: x\ninventory.toml: b: y"
    assert isinstance(error, errors.ConfigError)


def test_refusal_says_nothing_was_changed_without_each_raise_site_writing_it() -> None:
    assert errors.LockHeld("chat: lock held by ana since 10:02").lines() == [
        "chat: lock held by ana since 10:02; refused, nothing was changed"]


def test_provider_error_text_names_provider_status_correlation_and_hint() -> None:
    error = errors.ProviderAuthError(
        "vultr", "Invalid API token.", status=401, correlation_id="abc123", hint="check VULTR_API_KEY"
    )
    assert str(error) == "vultr API HTTP 401: Invalid API token. (correlation_id abc123); check VULTR_API_KEY"
    assert (error.provider, error.status, error.provider_message, error.correlation_id) == (
        "vultr",
        401,
        "Invalid API token.",
        "abc123",
    )


def test_step_failed_keeps_step_and_exit_status() -> None:
    error = errors.StepFailed("chat: step 'apt-get upgrade' exited 100", step="apt-get upgrade", exit_status=100)
    assert (error.step, error.exit_status, str(error)) == (
        "apt-get upgrade",
        100,
        "chat: step 'apt-get upgrade' exited 100",
    )
