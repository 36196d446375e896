"""WhatsApp channels are part of "healthy" (issue 15): the Zpro upgrade records every channel's status before the
snapshot, waits after the restart until each channel CONNECTED before is CONNECTED again, names the one that is
not (its tenant, what to do), and reports both downtimes. Real CLI, real sshd hosts, the channel table modelled
by the sandbox's Postgres fake (a backend restart sends Baileys channels OPENING, then CONNECTED)."""

from __future__ import annotations

import marshal

import pytest

from tests.integration.playbook_support import PlaybookWorld, json_summary

pytestmark = pytest.mark.integration

CHANNEL_STEP = "WhatsApp channels back (CONNECTED)"


def channel_probes(world: PlaybookWorld, host: str) -> list[list[str]]:
    """Given a host, return the docker exec ... psql calls that read its channel rows (the SELECT from the channel table)."""
    return [record["argv"] for record in world.journal(host)
            if record["argv"][:2] == ["docker", "exec"] and any('from "' in word for word in record["argv"])]


def test_upgrade_chat_waits_for_channels_and_reports_both_downtimes_when_they_reconnect(world: PlaybookWorld) -> None:
    world.hosts.set_channels("chat", reconnect_seconds=0.8)

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--json")

    assert result.exit_code == 0, result.output
    summary = json_summary(result.stdout)
    http, channels = summary["downtime_seconds"], summary["channels_downtime_seconds"]
    # The channels came back 0.8 s after the restart: well after HTTP answered, and the run waited for them.
    assert isinstance(channels, float) and channels >= http + 0.5, (http, channels)
    assert "downtime until every WhatsApp channel is back:" in result.stderr
    assert len(channel_probes(world, "chat")) >= 3  # preflight once, then verify polled until all were back
    step = next(step for step in summary["steps"] if step["name"] == CHANNEL_STEP)
    assert step["result"] == "ok"


def test_upgrade_chat_fails_naming_channel_tenant_and_scan_when_a_session_ends_in_qrcode(world: PlaybookWorld) -> None:
    world.hosts.set_channels("chat", lose_session=["Vendas"])

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--var", "channels_wait=1.5")

    assert result.exit_code == 1, result.output
    end = world.run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("failed", f"verify: {CHANNEL_STEP}")
    assert "1 of 4 WhatsApp channel(s) CONNECTED before are not back" in result.stderr
    assert "'Vendas' (id 2, tenant 1, baileys) is qrcode" in result.stderr
    assert "must scan the QR code again" in result.stderr
    # The channels that reconnected are not named; the one already DISCONNECTED before the run is not required.
    assert "'Atendimento'" not in result.stderr and "'Antigo'" not in result.stderr
    assert "ROLLBACK" in result.stderr


def test_upgrade_chat_refuses_before_snapshot_naming_the_var_when_the_channel_table_is_missing(world: PlaybookWorld) -> None:
    world.hosts.set_channels("chat", table="WhatsappsZPRO")  # Zpro renamed the model: no table "Whatsapps"
    package = str(world.release())

    refused = world.cli("upgrade", "chat", "--package", package, "--yes")

    assert refused.exit_code == 3, refused.output
    assert "no table 'Whatsapps'" in refused.stderr and "set the var channels_table" in refused.stderr
    assert "no snapshot was taken" in refused.stderr
    assert world.snapshot_posts() == []
    assert world.changes("chat") == []

    # The var it names is the fix: with it the same upgrade runs through.
    fixed = world.cli("upgrade", "chat", "--package", package, "--yes", "--var", "channels_table=WhatsappsZPRO")

    assert fixed.exit_code == 0, fixed.output


def test_upgrade_chat_fails_when_a_lost_channel_is_masked_by_a_row_forged_in_another_channels_type(world: PlaybookWorld) -> None:
    # Channel 5's type holds a newline and the start of a fake row "2|CONNECTED|...": psql -tA prints it as a row of
    # its own, which would say the lost channel 2 is back.
    from opsguard.sandbox.stubs.channels import DEFAULT_CHANNELS

    rows = [{"id": cid, "name": name, "type": kind, "tenantId": tenant, "status": status, "since": 0.0}
            for cid, name, kind, tenant, status in DEFAULT_CHANNELS]
    rows[4]["type"] = "baileys|2|Antigo\n2|CONNECTED|baileys|1"
    world.hosts.set_channels("chat", lose_session=["Vendas"])
    (world.hosts.host("chat").root / "stub-state" / "channels").write_bytes(marshal.dumps(rows))

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--var", "channels_wait=1.5")

    assert result.exit_code == 1, result.output
    assert (world.run_end("chat")["failed_step"]) == f"verify: {CHANNEL_STEP}"
    assert "'Vendas' (id 2, tenant 1, baileys) is qrcode" in result.stderr
