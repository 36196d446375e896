"""npm, npx and node, as they behave in a Zpro app directory (backend/ or frontend/).

npm reads the package.json of the current directory: install / i / ci / update leave
node_modules/.package-lock.json behind; ``npm run SCRIPT`` prints the script it runs, fails as npm
does without a package.json (254) or without that script (1), and ``quasar build`` leaves the
frontend's dist/spa/index.html behind. ``npx sequelize`` (or sequelize-cli) db:migrate applies the
backend's pending migration files and db:migrate:status shows each up or down (migrations.py).
"""

from __future__ import annotations

import os

from .core import Call, current_directory, err, options_and_words, out, to_json, write_inside
from .migrations import applied_migrations, migration_files, save_applied_migrations

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def npm(call: Call) -> int:
    """Answer npm: -v, install / ci / update, and run / run-script."""
    options, words = options_and_words(call.args, ("--prefix", "-w", "--workspace", "--loglevel"))
    directory = current_directory()
    package = read_package(directory)
    if "-v" in options or "--version" in options:
        out("10.8.2\n")
    elif words[:1] in (["install"], ["i"], ["ci"], ["update"]):
        if "--force" in options:
            err("npm warn using --force Recommended protections disabled.\n")
        if package is not None:
            write_inside(call, os.path.join(directory, "node_modules", ".package-lock.json"),
                         to_json({"name": package.get("name", ""), "lockfileVersion": 3, "packages": {}}) + "\n")  # fmt: skip
        out("\nadded 1180 packages, and audited 1181 packages in 3s\n\nfound 0 vulnerabilities\n")
    elif words[:1] in (["run"], ["run-script"]) and len(words) > 1:
        if package is None:
            err(f"npm error code ENOENT\nnpm error syscall open\nnpm error path {directory}/package.json\n"
                "npm error enoent Could not read package.json\n")  # fmt: skip
            return 254
        scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
        script = scripts.get(words[1]) if scripts else None
        if script is None:
            err(
                f'npm error Missing script: "{words[1]}"\nnpm error\nnpm error To see a list of scripts, run:\nnpm error   npm run\n'
            )
            return 1
        out(f"\n> {package.get('name', '')}@{package.get('version', '')} {words[1]}\n> {script}\n\n")
        if "quasar build" in str(script):
            index = f"<!doctype html><title>Zpro {package.get('version', '')}</title>\n"
            write_inside(call, os.path.join(directory, "dist", "spa", "index.html"), index)
            out(" Build succeeded\n")
    return 0


def read_package(directory: str) -> dict[str, Any] | None:
    """Return the package.json of a directory, or None when it has none (or it does not parse)."""
    import json

    try:
        with open(os.path.join(directory, "package.json"), encoding="utf-8") as source:
            package = json.load(source)
    except (OSError, ValueError):
        return None
    return package if isinstance(package, dict) else None


def npx(call: Call) -> int:
    """Answer npx: sequelize db:migrate and db:migrate:status; any other package prints nothing."""
    if "sequelize" in call.args or "sequelize-cli" in call.args:
        out("\nSequelize CLI [Node: 20.18.0, CLI: 6.6.2, ORM: 6.37.3]\n\n")
        migrations = migration_files()
        applied = applied_migrations(call)
        if "db:migrate:status" in call.args:
            out('Loaded configuration file "dist/config/database.js".\nUsing environment "production".\n')
            out("".join(f"{'up' if name in applied else 'down'} {name}\n" for name in migrations))
        elif "db:migrate" in call.args:
            out('Loaded configuration file "dist/config/database.js".\nUsing environment "production".\n')
            pending = [name for name in migrations if name not in applied]
            if not pending:
                out("No migrations were executed, database schema was already up to date.\n")
            for name in pending:
                out(f"== {name[:-3]}: migrating =======\n== {name[:-3]}: migrated (0.031s)\n\n")
            save_applied_migrations(call, applied + pending)
    return 0


def node(call: Call) -> int:
    """Answer node: -v / --version; running a script prints nothing."""
    if "-v" in call.args or "--version" in call.args:
        out("v20.18.0\n")
    return 0
