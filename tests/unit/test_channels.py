"""The shared WhatsApp channel check (hostfacts + playbooks/common): the probe's text, its parse, and the verdicts
the upgrade (and `opsguard health`) give on it."""

from __future__ import annotations

import re
import shlex

import pytest

from opsguard.errors import ConfigError
from opsguard.hostfacts import parse_channel_probe
from opsguard.playbooks.common import (
    CHANNEL_VARS,
    ChannelTable,
    channel_probe_command,
    channel_table_param,
    channel_table_problem,
    channels_back_problem,
    channels_back_step,
    channels_connected_fact,
    channels_down,
)
from opsguard.readonly import read_only_problem

COLUMNS = "--- channel columns\nid\nname\nsession\nstatus\ntype\ntenantId\n"
ROWS = "--- channels\n1|CONNECTED|baileys|1|Atendimento\n2|qrcode|baileys|1|Vendas - loja\n3|DISCONNECTED|baileys|2|Antigo\n"


def table(**overrides: str) -> ChannelTable:
    found = channel_table_param({**CHANNEL_VARS, **overrides})
    assert found is not None
    return found


def test_channel_probe_is_read_only_and_never_reads_the_session_column() -> None:
    command = channel_probe_command("postgresql", "zpro", "zpro", table())

    assert read_only_problem(command) is None
    assert "session" not in command.replace("information_schema", "")
    assert '"tenantId"' in command and "default_transaction_read_only=on" in command


def test_parse_channel_probe_reads_each_row_as_its_five_fields() -> None:
    probe = parse_channel_probe(COLUMNS + ROWS)

    assert probe.columns[:2] == ("id", "name")
    assert [(channel.id, channel.status, channel.tenant, channel.name) for channel in probe.channels] == [
        ("1", "CONNECTED", "1", "Atendimento"), ("2", "qrcode", "1", "Vendas - loja"), ("3", "DISCONNECTED", "2", "Antigo")]


def test_parse_channel_probe_raises_when_the_probe_did_not_finish() -> None:
    with pytest.raises(ValueError, match="no column list"):
        parse_channel_probe(COLUMNS)


def test_channel_table_problem_names_the_table_var_when_the_table_is_missing() -> None:
    problem = channel_table_problem(parse_channel_probe("--- channel columns\n--- channels\nchannels_query_failed\n"), table())

    assert problem is not None and "no table 'Whatsapps'" in problem and "set the var channels_table" in problem


def test_channel_table_problem_names_the_column_var_when_a_column_is_renamed() -> None:
    problem = channel_table_problem(parse_channel_probe(COLUMNS + ROWS), table(channel_tenant_column="companyId"))

    assert problem is not None and "'companyId' (var channel_tenant_column)" in problem


def test_channels_connected_fact_lists_only_connected_ids() -> None:
    assert channels_connected_fact(COLUMNS + ROWS) == {"channels_connected_before": "1"}
    assert channels_connected_fact(COLUMNS + "--- channels\n") == {"channels_connected_before": "none"}


def test_channels_back_problem_names_each_channel_not_back_with_tenant_and_what_to_do() -> None:
    problem = channels_back_problem("connected_before=1,2,9\n" + COLUMNS + ROWS, "5m")

    assert problem is not None and problem.startswith("2 of 3 WhatsApp channel(s)")
    assert "'Vendas - loja' (id 2, tenant 1, baileys) is qrcode" in problem and "scan the QR code again" in problem
    assert "channel id 9 is no longer in the table" in problem
    assert "Atendimento" not in problem  # it is back


def test_channels_back_problem_passes_when_every_channel_connected_before_is_back() -> None:
    assert channels_back_problem("connected_before=1\n" + COLUMNS + ROWS) is None
    assert channels_back_problem("connected_before=none\n" + COLUMNS + "--- channels\n") is None


def test_channels_back_problem_fails_without_the_list_of_channels_before() -> None:
    assert channels_back_problem(COLUMNS + ROWS) == "the channel check printed no list of the channels connected before"


@pytest.mark.parametrize("var", ["channels_table", "channel_status_column"])
def test_channel_table_param_refuses_a_name_that_is_not_an_identifier(var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        channel_table_param({**CHANNEL_VARS, var: 'x"; drop table y; --'})


def test_channel_table_param_is_none_when_the_host_has_no_channels() -> None:
    assert channel_table_param({**CHANNEL_VARS, "channels_table": ""}) is None


def test_channels_down_lists_every_channel_not_connected_now_for_a_health_check() -> None:
    down = channels_down(COLUMNS + ROWS)

    assert [line.split(" (")[0] for line in down] == ["'Vendas - loja'", "'Antigo'"]
    assert "is DISCONNECTED: reconnect it in Zpro" in down[1]


# -- rows that cannot be forged through a column's value -----------------------------------------------------


def rows_query(command: str) -> str:
    """Given the channel probe, return the SQL of its SELECT of the rows (as psql receives it)."""
    [line] = [line for line in command.splitlines() if 'from "' in line]
    words = shlex.split(line)
    return words[words.index("-tAc") + 1]


@pytest.mark.parametrize("role", ["id", "status", "type", "tenant", "name"])
def test_channel_probe_command_neutralises_newlines_and_pipes_in_every_column(role: str) -> None:
    # A newline then "7|CONNECTED|..." in any value would print a forged row: psql -tA does not escape.
    query = rows_query(channel_probe_command("postgresql", "zpro", "zpro", table(channel_type_column="kind")))
    column = table(channel_type_column="kind").columns[role]

    assert f"translate(\"{column}\"::text, chr(10) || chr(13) || chr(124), '   ')" in query
    assert query.count("translate(") == 5


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0b", "\x1e", "\r"], ids=["line-separator", "nel", "vt", "rs", "cr"])
def test_parse_channel_probe_splits_rows_only_at_newlines_when_a_value_holds_another_line_break(separator: str) -> None:
    # psql ends a row with "\n" only: any other line break inside a value belongs to that value, never starts a row.
    probe = parse_channel_probe(COLUMNS + f"--- channels\n8|DISCONNECTED|a{separator}7|1|Sales\n")

    assert [(channel.id, channel.status, channel.type) for channel in probe.channels] == [("8", "DISCONNECTED", f"a{separator}7")]


def test_parse_channel_probe_refuses_a_row_with_more_than_five_fields() -> None:
    # The probe turns every '|' in a value into a space: a sixth field means the output is not the probe's.
    with pytest.raises(ValueError, match=re.escape("is not id|status|type|tenant|name")):
        parse_channel_probe(COLUMNS + "--- channels\n8|DISCONNECTED|a|b|c|d\n")


def test_parse_channel_probe_refuses_duplicate_channel_ids() -> None:
    # channel_id_column naming a column that is not unique: one row would mask the other.
    with pytest.raises(ValueError, match="channel id 1 is in 2 rows"):
        parse_channel_probe(COLUMNS + "--- channels\n1|qrcode|baileys|1|A\n1|CONNECTED|baileys|1|B\n")


def test_channels_back_step_cannot_tell_when_channel_ids_repeat() -> None:
    step = channels_back_step("postgresql", table(), wait=300, every=5)
    assert step.check is not None

    problem = step.check.test("connected_before=1\n" + COLUMNS + "--- channels\n1|qrcode|baileys|1|A\n1|CONNECTED|baileys|1|B\n")

    assert problem is not None and "channel id 1 is in 2 rows" in problem and "channel_id_column" in problem
