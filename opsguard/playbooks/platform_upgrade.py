"""Zpro platform upgrade from a release archive, with the service down only for migrate + swap + restart.

What it does: the vendor's procedure stops every pm2 app first and then unpacks, installs, migrates and
builds, so the platform is down for the whole install and build. Here the release is unpacked into a
STAGING copy beside the live tree and installed and built there while the old version keeps serving.
Then the database is dumped and the dump verified; only then are the two pm2 apps stopped (by name),
the migrations run from the staged backend, the trees swapped by renames (the media directory is
moved, never copied) and the apps restarted by name.

Why it is safe: every step is checked and the run stops at the first failure; the migrate (which has
no undo) runs only after a dump that `pg_restore -l` can read; the dump, the .env files and the nginx
sites are copied off the host (verified by sha256) before any service stops; the live tree is renamed
to ``<app_dir>.previous-<ts>``, never deleted; .env files, nginx sites and the code are backed up
first; pm2 is only ever addressed by process name (never ``all``, never ``delete``); the firewall is
never touched. "Healthy" includes the WhatsApp channels: every channel CONNECTED before must be
CONNECTED again. Rollback advice names the exact commands for each point the run can stop at, and
``opsguard rollback`` runs them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, Final

from opsguard.errors import ConfigError
from opsguard.hostfacts import (
    MIGRATIONS_APPLIED,
    MIGRATIONS_FILES,
    dotenv_value,
    parse_df,
    parse_dotenv_raw,
    parse_key_values,
    parse_migration_listing,
    parse_pm2_jlist,
    parse_sha256sum,
    url_problem,
)
from opsguard.inventory import Host
from opsguard.plan import Check, CopyItem, Facts, Plan, Poll, Step
from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.common import (
    CHANNEL_VARS,
    COPY_VARS,
    DPKG_LOCK_FILES,
    PM2_JLIST,
    channel_table_param,
    channels_back_step,
    channels_step,
    copies_download,
    copies_size_step,
    disk_step,
    du_bytes_line,
    dump_verification_lines,
    dumps_problem,
    guarded,
    http_status_check,
    http_status_command,
    lock_step,
    memory_step,
    name_param,
    nearest_existing,
    number_param,
    path_param,
    paths_param,
    pm2_online_problem,
    pm2_restarts_facts,
    quote,
    read_only_psql,
    relative_paths_param,
    shell_word,
    text_param,
    timestamp_param,
)
from opsguard.playbooks.release import archive_kind

KIND: Final = "change"

VARS: dict[str, Any] = {
    "deploy_user": "deployzdg",  # pm2, npm and npx run as this user (sudo -iu)
    "app_dir": "/home/deployzdg/zpro.io",  # holds backend/ and frontend/
    "backup_dir": "/var/backups/opsguard",  # a <ts>/ directory per run: dump, .env files, nginx sites, code
    "nginx_sites_dir": "/etc/nginx/sites-enabled",
    "pm2_log_dir": "/home/deployzdg/.pm2/logs",
    "backend_process": "zpro-backend",
    "frontend_process": "zpro-frontend",
    "frontend_port": 4444,
    "db_container": "postgresql",
    "redis_container": "redis-zpro",
    "migrations_dir": "backend/dist/database/migrations",  # relative to app_dir: the release's compiled migrations
    "env_files": ["backend/.env", "frontend/.env"],  # relative to app_dir; kept across the upgrade
    "moved_dirs": ["backend/public"],  # media: moved into the new tree, never copied
    "dpkg_lock_files": DPKG_LOCK_FILES,
    "disk_paths": ["/"],
    "disk_limit_percent": 90,
    "min_memory_gb": 4.0,  # RAM+swap for the frontend build
    "health_wait": 50.0,  # seconds for the backend to answer after the restart
    "stable_for": 60.0,  # seconds the pm2 restart counts must stay unchanged
    "poll_every": 5.0,
    "install_timeout": 1800.0,
    "build_timeout": 3600.0,
    "dump_timeout": 3600.0,
    "migrate_timeout": 1800.0,
    # WhatsApp session data kept on disk (relative to app_dir; [] when sessions live in the database, which the
    # dump covers): copied off the host with the dump, the .env files and the nginx sites.
    "session_dirs": [],
    **CHANNEL_VARS,
    **COPY_VARS,
}

OPTIONS: dict[str, Any] = {"package": None, "package_sha256": None}
REQUIRED: dict[str, str] = {"package": "--package FILE"}

# The change steps a rollback looks for in the ledger (which of them a run started decides what it undoes).
STOP_STEP = "stop the apps by name"
MIGRATE_STEP = "migrate the database (staged backend)"
MEDIA_STEP = "swap: move the media into the new tree"
KEEP_STEP = "swap: keep the live tree as previous"
LIVE_STEP = "swap: put the staged tree live"

ENV_KEYS = ("PORT", "DB_PORT", "POSTGRES_USER", "POSTGRES_DB", "BACKEND_URL", "FRONTEND_URL")
_URL_KEYS = ("BACKEND_URL", "FRONTEND_URL")
_PORT_KEYS = ("PORT", "DB_PORT")
_SQL_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# node prints these on stderr at every start; they are not errors of the new version.
# A pm2 log_date_format prefix may stand before them, so they are searched for, not anchored.
_NODE_WARNING = re.compile(r"\(node:\d+\) (\[\w+\] )?\w*Warning\b|\(Use `node --trace-")


def plan(host: Host, params: Mapping[str, Any]) -> Plan:
    """Given a Zpro host and its params (VARS + package, package_sha256, ts), return the upgrade plan.

    Raise ConfigError if the package or its sha256 is missing, or a param is malformed.
    """
    layout = ZproLayout(params)
    preflight = (
        _tools_step(layout),
        disk_step([*layout.disk_paths, layout.app_dir], layout.disk_limit, also=[layout.backup_dir]),
        memory_step(layout.min_memory_gb),
        lock_step(layout.lock_files),
        pm2_online_step(layout, "pm2 processes online (as the deploy user)", "before"),
        _env_step(layout),
        Step(
            name="postgres ready",
            command=f"docker exec {quote(layout.db_container)} pg_isready -U {{{{postgres_user}}}} -d {{{{postgres_db}}}}",
            mutates=False,
            timeout=30,
            check=Check("pg_isready: accepting connections", lambda out: None if "accepting connections" in out else "postgres is not accepting connections"),
        ),
        _redis_step(layout),
        *([channels_step(layout.db_container, layout.channels)] if layout.channels else []),
        _same_filesystem_step(layout),
        _free_space_step(layout),
        migration_step(layout, "migration status (recorded)", facts=Facts(("migrations_down_before",), _migrations_down_fact),
                        why="SequelizeMeta (read-only SQL) against the live release's migration files; pending ones are recorded"),
        _copies_size_step(layout),
    )
    change = (
        Step(
            name="nginx configuration valid",
            command="nginx -t",
            mutates=True,
            timeout=30,
            why="the restart must not meet an nginx that cannot reload; after the snapshot because nginx -t "
            "creates missing log files",
        ),
        Step(
            name="create the backup directory for this run",
            command=f"install -d -m 0700 {quote(layout.run_backup)}",
            mutates=True,
            timeout=30,
            why="mode 0700: it will hold the database dump and the .env files",
        ),
        Step(
            name="upload the release package",
            command=f": upload {quote(layout.package)} to {quote(layout.remote_package)}",
            mutates=True,
            timeout=900,
            upload=(layout.package, layout.remote_package),
        ),
        Step(
            name="package checksum on the host",
            command=f"sha256sum {quote(layout.remote_package)}",
            mutates=False,
            timeout=120,
            check=_sha256_check(layout.package_sha256),
            why="the bytes on the host are the bytes the operator chose",
        ),
        _backup_step(layout),
        Step(
            name="stage: copy the live code (no node_modules, no media)",
            command=f"mkdir {quote(layout.staging)} && tar -C {quote(layout.staging)} -xf {quote(layout.code_backup)}",
            mutates=True,
            timeout=900,
            why="the vendor unpacks the release OVER the install; a copy of it is the same base, and mkdir "
            "(not mkdir -p) refuses to reuse an existing staging dir",
        ),
        _unpack_step(layout),
        _deploy_step("stage: backend npm install --force", f"cd {quote(layout.staging + '/backend')} && npm install --force",
                     layout, layout.install_timeout, "in the staged tree: the live site keeps serving"),
        _deploy_step("stage: frontend npm install --force", f"cd {quote(layout.staging + '/frontend')} && npm install --force",
                     layout, layout.install_timeout, "in the staged tree: the live site keeps serving"),
        _deploy_step("stage: frontend npm run build", f"cd {quote(layout.staging + '/frontend')} && npm run build",
                     layout, layout.build_timeout, "RAM-heavy (~4 GB RAM+swap, checked in preflight); runs while the old version serves"),
        Step(
            name="dump the database (pg_dump -Fc)",
            command=(
                f"docker exec {quote(layout.db_container)} pg_dump -Fc -U {{{{postgres_user}}}} {{{{postgres_db}}}} "
                f"> {quote(layout.dump)}"
            ),
            mutates=True,
            timeout=layout.dump_timeout,
            why="the migrations' down() are empty: this dump is the rollback of the migrate; taken as late as "
            "possible before the stop (what is written between the dump and the stop is not in it)",
        ),
        verify_dump_step(layout),
        _copy_step(layout, params),
        Step(
            name=STOP_STEP,
            command="\n".join(
                [
                    f"pm2 stop {quote(layout.backend)} {quote(layout.frontend)} || exit 1",
                    f'echo "error_log_bytes=$(stat -c %s {quote(layout.error_log)} 2>/dev/null || echo 0)"',
                ]
            ),
            mutates=True,
            timeout=120,
            sudo_user=layout.deploy_user,
            downtime="starts",
            facts=Facts(("error_log_bytes", "error_log_next_byte"), _error_log_fact),
            why="by name, never 'all' (other apps under this pm2 keep running); the error log size is "
            "recorded so only errors of the new version count",
        ),
        _deploy_step(MIGRATE_STEP, f"cd {quote(layout.staging + '/backend')} && npx --no-install sequelize db:migrate",
                     layout, layout.migrate_timeout, "only after the dump was verified; no undo: the rollback is the dump"),
        _move_media_step(layout),
        Step(
            name=KEEP_STEP,
            command=f"mv -T {quote(layout.app_dir)} {quote(layout.previous)}",
            mutates=True,
            timeout=60,
            why="a rename on one filesystem: instant, and the old tree stays whole for the rollback",
        ),
        Step(
            name=LIVE_STEP,
            command=f"mv -T {quote(layout.staging)} {quote(layout.app_dir)}",
            mutates=True,
            timeout=60,
            why="pm2's script paths point into app_dir, so the restart runs the new code",
        ),
        Step(
            name="restart the apps by name",
            command=f"pm2 restart {quote(layout.backend)} {quote(layout.frontend)} --update-env && pm2 save",
            mutates=True,
            timeout=180,
            sudo_user=layout.deploy_user,
            why="by name, never 'all'; pm2 save keeps the list for a reboot",
        ),
    )
    verify = (
        Step(
            name="backend answers on localhost:PORT",
            command=http_status_command("http://localhost:{{backend_port}}/"),
            mutates=False,
            timeout=15,
            check=http_status_check("any HTTP status: the backend is listening", lambda status: 100 <= status <= 599),
            poll=Poll(every=min(layout.every, 2.0), within=layout.health_wait),
            downtime="ends",
        ),
        Step(
            name="frontend answers 2xx/3xx",
            command=http_status_command(f"http://localhost:{layout.frontend_port}/"),
            mutates=False,
            timeout=15,
            check=http_status_check("HTTP 200-399", lambda status: 200 <= status <= 399),
            poll=Poll(every=min(layout.every, 2.0), within=layout.health_wait),
        ),
        *([channels_back_step(layout.db_container, layout.channels, wait=layout.channels_wait, every=min(layout.every, 2.0))]
          if layout.channels else []),
        pm2_online_step(layout, "pm2 processes online after the restart", "after"),
        pm2_stable_step(layout),
        migration_step(layout, "no migration left down", check=Check("every migration up", guarded(no_migration_down))),
        _error_log_step(layout),
    )
    return Plan(
        playbook="platform_upgrade",
        host=host.name,
        kind=KIND,
        summary=(
            f"Zpro upgrade from {posixpath.basename(layout.package)} (sha256 {layout.package_sha256[:12]}...): staged install "
            "and build while serving; downtime only for migrate + swap + restart"
        ),
        preflight=preflight,
        change=change,
        verify=verify,
        rollback=_rollback(host, layout),
        params=dict(params),
    )


class ZproLayout:
    """Every param the plan uses, validated once, and the paths derived from them (the rollback of a run rebuilds it
    from that run's recorded params: the same staging, previous tree and dump paths)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        if not params.get("package"):
            raise ConfigError("needs --package FILE")
        self.package = text_param(params, "package")
        sha = params.get("package_sha256")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ConfigError("param package_sha256: must be the package's lower-case hex sha256")
        self.package_sha256 = sha
        self.kind = archive_kind(self.package)
        self.ts = timestamp_param(params)
        self.deploy_user = name_param(params, "deploy_user")
        self.app_dir = path_param(params, "app_dir")
        if self.app_dir == "/":
            raise ConfigError("param app_dir: must not be /")
        self.backup_dir = path_param(params, "backup_dir")
        self.nginx_sites_dir = path_param(params, "nginx_sites_dir")
        self.pm2_log_dir = path_param(params, "pm2_log_dir")
        self.backend = name_param(params, "backend_process")
        self.frontend = name_param(params, "frontend_process")
        self.frontend_port = int(number_param(params, "frontend_port", minimum=1))
        self.db_container = name_param(params, "db_container")
        self.redis_container = name_param(params, "redis_container")
        self.env_files = relative_paths_param(params, "env_files")
        if "backend/.env" not in self.env_files:
            raise ConfigError("param env_files: must include backend/.env")
        self.moved_dirs = relative_paths_param(params, "moved_dirs")
        self.session_dirs = relative_paths_param(params, "session_dirs")
        self.migrations_dir = relative_paths_param({"migrations_dir": [params.get("migrations_dir")]}, "migrations_dir")[0]
        self.lock_files = paths_param(params, "dpkg_lock_files")
        self.disk_paths = paths_param(params, "disk_paths")
        self.disk_limit = number_param(params, "disk_limit_percent", minimum=1)
        self.min_memory_gb = number_param(params, "min_memory_gb")
        self.health_wait = number_param(params, "health_wait", minimum=0)
        self.stable_for = number_param(params, "stable_for", minimum=0)
        self.every = number_param(params, "poll_every", minimum=0.01)
        self.install_timeout = number_param(params, "install_timeout", minimum=1)
        self.build_timeout = number_param(params, "build_timeout", minimum=1)
        self.dump_timeout = number_param(params, "dump_timeout", minimum=1)
        self.migrate_timeout = number_param(params, "migrate_timeout", minimum=1)
        self.channels = channel_table_param(params)
        self.channels_wait = number_param(params, "channels_wait", minimum=0)
        # Derived paths: staging and previous sit BESIDE app_dir, so the swap is a rename on one filesystem.
        self.staging = f"{self.app_dir}.staging-{self.ts}"
        self.previous = f"{self.app_dir}.previous-{self.ts}"
        self.run_backup = f"{self.backup_dir}/{self.ts}"
        self.remote_package = f"{self.run_backup}/package.{self.kind}"
        self.code_backup = f"{self.run_backup}/code-before.tar"
        self.dump = f"{self.run_backup}/database.dump"
        self.error_log = f"{self.pm2_log_dir}/{self.backend}-error.log"


# -- preflight -------------------------------------------------------------------------------------------


def _tools_step(layout: ZproLayout) -> Step:
    tools = ["curl", "sha256sum", "tar", "docker", "nginx", "stat", "du"]
    if layout.kind == "zip":
        tools.append("unzip")
    return Step(
        name="tools present",
        command=f'for tool in {" ".join(tools)}; do command -v "$tool" >/dev/null 2>&1 || {{ echo "missing: $tool"; exit 1; }}; done',
        mutates=False,
        timeout=30,
        why="a missing unzip half-way through the change would stop it after the backup",
    )


def pm2_online_step(layout: ZproLayout, name: str, when: str) -> Step:
    def test(stdout: str) -> str | None:
        return pm2_online_problem(stdout, [layout.backend, layout.frontend])

    return Step(
        name=name,
        command=PM2_JLIST,
        mutates=False,
        timeout=60,
        sudo_user=layout.deploy_user,
        check=Check(f"{layout.backend} and {layout.frontend} online", guarded(test)),
        facts=pm2_restarts_facts({f"backend_restarts_{when}": layout.backend, f"frontend_restarts_{when}": layout.frontend}),
        why="pm2 runs as the deploy user (root's pm2 list is empty); restart counts are recorded",
    )


def env_problems(stdout: str) -> str | None:
    """Given the PORT/DB_PORT/POSTGRES_*/..._URL lines of backend/.env, return None if sane, else the problems."""
    raw = parse_dotenv_raw(stdout)
    problems = []
    for key in ENV_KEYS:
        value = dotenv_value(raw[key]) if key in raw else ""
        if not value:
            problems.append(f"{key} is missing")
        elif key in _PORT_KEYS and not (value.isdigit() and 0 < int(value) < 65536):
            problems.append(f"{key}={value!r} is not a port number")
        elif key in ("POSTGRES_USER", "POSTGRES_DB") and not _SQL_NAME.fullmatch(value):
            problems.append(f"{key} holds characters other than letters, digits, '_', '.', '-'")
        elif key in _URL_KEYS:
            problem = url_problem(raw[key])
            if problem:
                problems.append(f"{key} {problem}")
    return f"backend/.env: {'; '.join(problems)}" if problems else None


def _env_facts(stdout: str) -> dict[str, str]:
    raw = parse_dotenv_raw(stdout)
    names = {"PORT": "backend_port", "DB_PORT": "db_port", "POSTGRES_USER": "postgres_user",
             "POSTGRES_DB": "postgres_db", "BACKEND_URL": "backend_url", "FRONTEND_URL": "frontend_url"}
    return {fact: shell_word(dotenv_value(raw[key])) for key, fact in names.items() if key in raw}


def _env_step(layout: ZproLayout) -> Step:
    keys = "|".join(ENV_KEYS)
    return Step(
        name="backend .env values",
        command=f"grep -E '^[[:space:]]*(export[[:space:]]+)?({keys})[[:space:]]*=' {quote(layout.app_dir + '/backend/.env')}",
        mutates=False,
        timeout=30,
        check=Check("PORT, DB_PORT, POSTGRES_USER, POSTGRES_DB set; URLs without trailing ';', quote or space", env_problems),
        facts=Facts(("backend_port", "db_port", "postgres_user", "postgres_db", "backend_url", "frontend_url"), _env_facts),
        why="only these keys are read (grep): passwords and JWT secrets never leave the host",
    )


def _redis_step(layout: ZproLayout) -> Step:
    def test(stdout: str) -> str | None:
        if "PONG" in stdout or "NOAUTH" in stdout:
            return None
        return f"redis did not answer PONG ({stdout.strip()[:80]!r})"

    return Step(
        name="redis answers",
        command=f"docker exec {quote(layout.redis_container)} redis-cli ping",
        mutates=False,
        timeout=30,
        ok_codes=(0, 1),
        check=Check("PONG (or NOAUTH: it answers and wants a password, which stays on the host)", test),
    )


def _same_filesystem_step(layout: ZproLayout) -> Step:
    paths = [posixpath.dirname(layout.app_dir), layout.app_dir] + [f"{layout.app_dir}/{moved}" for moved in layout.moved_dirs]

    def test(stdout: str) -> str | None:
        devices = [line.split(" ", 1) for line in stdout.splitlines() if " " in line]
        if not devices:
            return "stat printed nothing"
        first_device, first_path = devices[0]
        others = [path for device, path in devices[1:] if device != first_device]
        if others:
            return f"{', '.join(others)} not on the filesystem of {first_path}: the swap would copy instead of rename"
        return None

    return Step(
        name="swap paths on one filesystem",
        command=f'for path in {" ".join(quote(path) for path in paths)}; do if [ -e "$path" ]; then stat -c \'%d %n\' "$path" || exit 1; fi; done',
        mutates=False,
        timeout=30,
        check=Check("app dir, its parent and the media dirs on one filesystem", guarded(test)),
        why="renames are instant only on one filesystem; across two, mv copies (long downtime)",
    )


def _free_space_step(layout: ZproLayout) -> Step:
    excludes = " ".join(f"--exclude={quote(layout.app_dir + '/' + moved)}" for moved in layout.moved_dirs)
    command = "\n".join(
        [
            f'echo "app_bytes=$(du -sb {excludes} {quote(layout.app_dir)} | cut -f1)"',
            'echo "db_bytes=$(' + read_only_psql(layout.db_container, "{{postgres_user}}", "{{postgres_db}}",
                                                 "select pg_database_size(current_database())") + ')"',
            nearest_existing("backup", layout.backup_dir),
            f'df -P -B1 {quote(posixpath.dirname(layout.app_dir))} "$backup"',
        ]
    )

    def test(stdout: str) -> str | None:
        values = parse_key_values(stdout)
        app_bytes, db_bytes = values.get("app_bytes", ""), values.get("db_bytes", "")
        if not app_bytes.isdigit() or not db_bytes.isdigit():
            return f"could not measure the app dir ({app_bytes!r}) or the database ({db_bytes!r})"
        rows = parse_df("\n".join(line for line in stdout.splitlines() if "=" not in line))
        if len(rows) < 2:
            return "df printed too few rows"
        app_fs, backup_fs = rows[0], rows[1]
        staging, backups = int(app_bytes), int(db_bytes) + int(app_bytes)  # dump + code tar (upper bounds)
        margin = 1.1
        if (app_fs.filesystem, app_fs.mount) == (backup_fs.filesystem, backup_fs.mount):
            need = (staging + backups) * margin
            if app_fs.available < need:
                return (f"{app_fs.mount} has {app_fs.available / 1e9:.1f} GB free; the staged copy ({staging / 1e9:.1f} GB), "
                        f"the dump and code backup ({backups / 1e9:.1f} GB) need {need / 1e9:.1f} GB")
            return None
        if app_fs.available < staging * margin:
            return f"{app_fs.mount} has {app_fs.available / 1e9:.1f} GB free; the staged copy needs {staging * margin / 1e9:.1f} GB"
        if backup_fs.available < backups * margin:
            return f"{backup_fs.mount} has {backup_fs.available / 1e9:.1f} GB free; the dump and code backup need {backups * margin / 1e9:.1f} GB"
        return None

    return Step(
        name="free space for the dump and the staged copy",
        command=command,
        mutates=False,
        timeout=600,
        check=Check("room for a full copy of the app (without media) and a dump as large as the database", guarded(test)),
    )


def migration_step(layout: ZproLayout, name: str, *, check: Check | None = None, facts: Facts | None = None,
                    why: str = "") -> Step:
    """Given the layout, return the read-only migration probe: SequelizeMeta's names, then the release's files."""
    query = 'select name from "SequelizeMeta" order by name'
    command = "\n".join(
        [
            f"echo {quote(MIGRATIONS_APPLIED)}",
            read_only_psql(layout.db_container, "{{postgres_user}}", "{{postgres_db}}", query) + " || exit 1",
            f"echo {quote(MIGRATIONS_FILES)}",
            f"ls -1 {quote(layout.app_dir + '/' + layout.migrations_dir)} || exit 1",
        ]
    )
    return Step(name=name, command=command, mutates=False, timeout=120, check=check, facts=facts,
                why=why or "sequelize db:migrate:status is not read-only (it creates SequelizeMeta and runs the app's config)")


def _migrations_down_fact(stdout: str) -> dict[str, str]:
    down = [migration for migration in parse_migration_listing(stdout) if migration.state == "down"]
    return {"migrations_down_before": str(len(down))}


def no_migration_down(stdout: str) -> str | None:
    down = [migration.name for migration in parse_migration_listing(stdout) if migration.state == "down"]
    if down:
        return f"{len(down)} migration(s) still down: {', '.join(down[:5])}"
    return None


# -- change ----------------------------------------------------------------------------------------------


def _sha256_check(expected: str) -> Check:
    def test(stdout: str) -> str | None:
        actual = parse_sha256sum(stdout)
        if actual != expected:
            return f"sha256 on the host is {actual}, expected {expected}: the upload is not the chosen package"
        return None

    return Check(f"sha256 = {expected}", guarded(test))


def _backup_step(layout: ZproLayout) -> Step:
    env_dir = layout.run_backup + "/env"
    excludes = " ".join(
        f"--exclude={quote('./' + path)}" for path in ["backend/node_modules", "frontend/node_modules", *layout.moved_dirs]
    )
    command = "\n".join(
        [
            f"cd {quote(layout.app_dir)} || exit 1",
            f"for file in {' '.join(quote(path) for path in layout.env_files)}; do",
            f'  if [ -e "$file" ]; then mkdir -p {quote(env_dir)}/"$(dirname "$file")" && cp -p "$file" {quote(env_dir)}/"$file" || exit 1; fi',
            "done",
            f"cp -rL {quote(layout.nginx_sites_dir)} {quote(layout.run_backup + '/nginx-sites')} || exit 1",
            # tar exits 1 when a file changed while read (a log of the running app): the copy is still whole.
            f"tar -C {quote(layout.app_dir)} {excludes} -cf {quote(layout.code_backup)} .; code=$?",
            'if [ "$code" -gt 1 ]; then exit "$code"; fi',
        ]
    )
    return Step(
        name="back up .env files, nginx sites and the code",
        command=command,
        mutates=True,
        timeout=900,
        why="code without node_modules and media; nginx sites with links followed (-L) so the files are saved",
    )


def _unpack_step(layout: ZproLayout) -> Step:
    if layout.kind == "zip":
        unpack = f"unzip -q -o {quote(layout.remote_package)} -d {quote(layout.staging)}"
    else:
        flag = "-xzf" if layout.kind == "tar.gz" else "-xf"
        unpack = f"tar -C {quote(layout.staging)} {flag} {quote(layout.remote_package)}"
    moved = " ".join(quote(path) for path in layout.moved_dirs)
    env_files = " ".join(quote(path) for path in layout.env_files)
    command = "\n".join(
        [
            f"cd {quote(layout.staging)} || exit 1",
            f"{unpack} || exit 1",
            # A media dir shipped in the package would block the move of the live one: set it aside.
            f'for dir in {moved}; do if [ -e "$dir" ]; then mv -T "$dir" "$dir.from-package-{layout.ts}" || exit 1; fi; done' if moved else ":",
            f"for file in {env_files}; do",
            f'  if [ -e {quote(layout.app_dir)}/"$file" ]; then mkdir -p "$(dirname "$file")" && cp -p {quote(layout.app_dir)}/"$file" "$file" || exit 1; fi',
            "done",
            'for file in backend/package.json frontend/package.json; do [ -f "$file" ] || { echo "the release has no $file: unexpected layout" >&2; exit 1; }; done',
            f"chown -R --reference={quote(layout.app_dir)} {quote(layout.staging)}",
        ]
    )
    return Step(
        name="stage: unpack the release over the copy",
        command=command,
        mutates=True,
        timeout=900,
        why="the live .env files are copied over whatever the package brings; the tree gets the live tree's "
        "owner (the deploy user), who runs npm in it",
    )


def _deploy_step(name: str, command: str, layout: ZproLayout, timeout: float, why: str) -> Step:
    return Step(name=name, command=command, mutates=True, timeout=timeout, sudo_user=layout.deploy_user, why=why)


def verify_dump_step(layout: ZproLayout) -> Step:
    command = "\n".join(dump_verification_lines("database", quote(layout.dump), f"docker exec -i {quote(layout.db_container)}"))
    return Step(
        name="verify the dump (gates the migrate)",
        command=command,
        mutates=False,
        timeout=600,
        check=Check("dump size > 0 and pg_restore -l lists its entries",
                    guarded(lambda stdout: dumps_problem(stdout, expected=["database"]))),
        why="a failing verification stops the run before any service stops",
    )


def _copies_size_step(layout: ZproLayout) -> Step:
    sessions = [f"{layout.app_dir}/{directory}" for directory in layout.session_dirs]
    lines = [
        'echo "dump_bytes=$(' + read_only_psql(layout.db_container, "{{postgres_user}}", "{{postgres_db}}",
                                               "select pg_database_size(current_database())") + ')"',
        du_bytes_line("files", [*(f"{layout.app_dir}/{path}" for path in layout.env_files), layout.nginx_sites_dir, *sessions]),
        *(f"[ -d {quote(path)} ] || echo {quote('missing=session_dirs:' + path)}" for path in sessions),
    ]
    return copies_size_step(lines, why="the database's size bounds its dump; refused before the snapshot when the "
                            "copies would not fit on this machine (copies_max_gb, free space of the state dir)")


def _copy_step(layout: ZproLayout, params: Mapping[str, Any]) -> Step:
    items = [
        CopyItem("database.dump", layout.dump),
        CopyItem("env", f"{layout.run_backup}/env", kind="dir", optional=True),
        CopyItem("nginx-sites", f"{layout.run_backup}/nginx-sites", kind="dir"),
        *(CopyItem(f"sessions/{directory}", f"{layout.app_dir}/{directory}", kind="dir") for directory in layout.session_dirs),
    ]
    return Step(
        name="copy off the host: the dump, .env files, nginx sites",
        command=": copied by opsguard through read-only commands: base64 and sha256sum, nothing written on the host",
        mutates=False,
        timeout=3600,
        download=copies_download(params, items),
        why="what a provider restore cannot give back selectively, on this machine, verified by sha256 against the "
        "host's; before any service stops",
    )


def _error_log_fact(stdout: str) -> dict[str, str]:
    size = parse_key_values(stdout).get("error_log_bytes", "")
    if not size.isdigit():
        raise ValueError(f"error log size {size!r} is not a number")
    # tail -c +N starts at byte N (1-based): computed here, as shell arithmetic is not a read-only probe.
    return {"error_log_bytes": size, "error_log_next_byte": str(int(size) + 1)}


def _move_media_step(layout: ZproLayout) -> Step:
    lines = [
        f"if [ -e {quote(layout.app_dir + '/' + moved)} ]; then mv -T {quote(layout.app_dir + '/' + moved)} {quote(layout.staging + '/' + moved)} || exit 1; fi"
        for moved in layout.moved_dirs
    ]
    return Step(
        name=MEDIA_STEP,
        command="\n".join(lines) or ":",
        mutates=True,
        timeout=60,
        why="moved (a rename), never copied: instant at any size. Order media, live->previous, staged->live: "
        "each is one atomic rename, so a stop at any point leaves a state the rollback lines undo exactly",
    )


# -- verify ----------------------------------------------------------------------------------------------


def pm2_stable_step(layout: ZproLayout) -> Step:
    def test(stdout: str) -> str | None:
        expected = parse_key_values(stdout)
        problem = pm2_online_problem(stdout, [layout.backend, layout.frontend])
        if problem:
            return problem
        processes = {process.name: process for process in parse_pm2_jlist(stdout)}
        for name, key in ((layout.backend, "backend"), (layout.frontend, "frontend")):
            if str(processes[name].restarts) != expected.get(key):
                return f"{name} restarted (restart count {expected.get(key)} -> {processes[name].restarts})"
        return None

    return Step(
        name="pm2 restart counts stable",
        command="echo backend={{backend_restarts_after}}; echo frontend={{frontend_restarts_after}}; " + PM2_JLIST,
        mutates=False,
        timeout=60,
        sudo_user=layout.deploy_user,
        check=Check(f"both online and not restarting for {layout.stable_for:g}s", guarded(test)),
        poll=Poll(every=layout.every, within=layout.stable_for + layout.health_wait, hold=layout.stable_for),
        why="a crash loop shows as a growing restart count even when each look says online",
    )


def new_error_lines(stdout: str) -> str | None:
    """Given the new part of the backend error log, return None if it holds no errors.

    Node's own deprecation/experimental warnings are not errors of the new version and are ignored.
    """
    lines = [line for line in stdout.splitlines() if line.strip()]
    errors = [line for line in lines if not _NODE_WARNING.search(line)]
    if errors:
        shown = " / ".join(line.strip()[:160] for line in errors[:3])
        return f"{len(errors)} new line(s) in the backend error log: {shown}"
    return None


def _error_log_step(layout: ZproLayout) -> Step:
    log = quote(layout.error_log)
    command = "\n".join(
        [
            f"now=$(stat -c %s {log} 2>/dev/null || echo 0)",
            # A log rotated since the stop (now smaller than before) is read whole.
            'if [ "$now" -lt {{error_log_bytes}} ]; then start=1; else start={{error_log_next_byte}}; fi',
            f'tail -c +"$start" {log} 2>/dev/null | head -n 50',
        ]
    )
    return Step(
        name="no new errors in the backend error log",
        command=command,
        mutates=False,
        timeout=30,
        sudo_user=layout.deploy_user,
        check=Check("nothing but node warnings written to the error log since the stop", guarded(new_error_lines)),
        why="a log rotated since the stop is read whole",
    )


# -- rollback --------------------------------------------------------------------------------------------


def _rollback(host: Host, layout: ZproLayout) -> tuple[str, ...]:
    as_deploy = f"sudo -iu {quote(layout.deploy_user)}"
    names = f"{quote(layout.backend)} {quote(layout.frontend)}"
    media_back = "; ".join(
        f"mv -T {quote(layout.staging + '/' + moved)} {quote(layout.app_dir + '/' + moved)}" for moved in layout.moved_dirs
    ) or "nothing to move"
    return (
        f"opsguard rollback {host.name} runs the lines below for the point this run stopped at, under this run's "
        "snapshot (no provider restore); by hand:",
        "stopped BEFORE 'stop the apps by name': the live site was never touched and still serves; "
        f"{layout.staging} and {layout.run_backup} can be inspected and removed later.",
        f"stopped at 'stop the apps by name' (database and code untouched): {as_deploy} pm2 restart {names} --update-env",
        "stopped at 'migrate the database' or later (the database may have changed; migrations have no undo): first "
        f"{as_deploy} pm2 stop {names}; then "
        f"docker exec -i {quote(layout.db_container)} pg_restore --clean --if-exists -U {{{{postgres_user}}}} -d {{{{postgres_db}}}} < {quote(layout.dump)} "
        "(loses what was written after the dump started); then put the code back as below and restart.",
        f"code after 'swap: move the media into the new tree': {media_back}",
        f"code after 'swap: keep the live tree as previous': mv -T {quote(layout.previous)} {quote(layout.app_dir)}; then move the media back as above",
        f"code after 'swap: put the staged tree live' or later: mv -T {quote(layout.app_dir)} {quote(layout.staging)}; "
        f"mv -T {quote(layout.previous)} {quote(layout.app_dir)}; {media_back}",
        f"then: {as_deploy} pm2 restart {names} --update-env && {as_deploy} pm2 save",
        f"last resort: opsguard restore {host.name} --snapshot {{snapshot_id}}",
    )


PLAYBOOK = Playbook(
    name="platform_upgrade",
    kind=KIND,
    summary="Zpro upgrade from a release archive: staged install and build while serving, short downtime",
    variables=VARS,
    options=OPTIONS,
    required=REQUIRED,
    roles=("zpro",),
    build=plan,
    examples=(
        Example(roles=("zpro",), package="zip"),
        Example(roles=("zpro",), package="tar.gz"),
    ),
)
