"""The Zpro database's migrations: which the backend ships, and which the database has applied.

Shared by the npx sequelize fake (db:migrate applies the pending ones, db:migrate:status shows
them) and the psql fake (SELECT ... FROM "SequelizeMeta" lists the applied ones). A fresh sandbox
database has applied MIGRATIONS, the files every sandbox backend ships (hosts.py lays them out).
"""

from __future__ import annotations

import os

from .core import Call, current_directory, load_state, save_state

MIGRATIONS = (
    "20240101000000-create-tenants.js",
    "20240315120000-add-campaigns.js",
    "20240610090000-add-whatsapp-sessions.js",
)
MIGRATIONS_DIR = ("dist", "database", "migrations")  # where a Zpro backend keeps its compiled migrations


def migration_files() -> list[str]:
    """Return the migration files of the backend in the current directory (the defaults when it has none)."""
    try:
        return sorted(
            name for name in os.listdir(os.path.join(current_directory(), *MIGRATIONS_DIR)) if name.endswith(".js")
        )
    except OSError:
        return list(MIGRATIONS)


def applied_migrations(call: Call) -> list[str]:
    """Return the migrations the database has applied, oldest first (MIGRATIONS until a db:migrate)."""
    return list(load_state(call, "migrations", list(MIGRATIONS)))


def save_applied_migrations(call: Call, names: list[str]) -> None:
    """Given the migrations now applied, oldest first, save them for the next call."""
    save_state(call, "migrations", names)
