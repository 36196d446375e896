"""A pathologically nested inventory is an inventory error naming the file, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsguard.errors import InventoryError
from opsguard.inventory import load_inventory


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 100_000 + "]" * 100_000 + "\n", "a = " + "{b = " * 50_000 + "1" + "}" * 50_000 + "\n"],
    ids=["arrays", "inline-tables"],
)
def test_load_inventory_raises_inventory_error_naming_file_when_nesting_is_too_deep(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InventoryError) as raised:
        load_inventory(path)

    assert len(raised.value.lines()) == 1
    assert str(path) in raised.value.lines()[0] and "nested" in raised.value.lines()[0]
    assert raised.value.exit_code == 78
