"""Rollback of a platform or stack upgrade without a provider restore: ``opsguard rollback HOST [--run RUN]``.

What it undoes is read from this machine's ledger (``rollback_source``, the only I/O here): which change
steps run R started, R's recorded params (the paths of the previous tree, the staging tree, the dump) and
the facts R's preflight read (the database user, the backend's port, the image digests, the WhatsApp
channels that were CONNECTED). The runner recorded those before R's first change step (``run-facts``), so
the plan is exactly the rollback advice R printed, for the point R reached, now runnable. ``plan`` is pure:
the record travels as the option ``rolled_back`` (JSON), so ``opsguard plan HOST rollback`` shows it.

Zpro (R was a platform_upgrade), in R's advice's order:
1. stop both apps by name (only if R got past its stop; if R stopped at the stop itself, only the restart);
2. ``pg_restore --clean --if-exists`` R's dump, only if R started the migrate (its down() are empty: the dump
   taken right before it is the way back; what was written after the dump is lost);
3. put the previous code tree back, whatever point R's swap reached (each rename is checked against what is
   on disk: running it twice changes nothing), and the media into it;
4. restart both apps by name; verify: HTTP, every channel CONNECTED before R is again, pm2 stable, no
   migration left down.

Compose stack (R was a stack_upgrade, and recreated the services): stop the app services; restore every
database from R's dumps (the new version may have migrated them on start); pin every service to the image
it ran before R (its recorded registry digest) in a compose override file opsguard writes beside the
compose file; ``up -d`` with exactly the compose files R's compose read (R recorded them) and the pins on top;
wait for health.

Why it is safe: it runs under the guard (rule 3d, ``rollback_guard``): with the locks held, R's records must be
intact (the ledger's hash chain), R not rolled back already and still the host's last change by this machine's
ledger, the host's change record and its history (a failed rollback of R is retried, not a later change); R's
verified snapshot authorises it while the provider still has it, and no new snapshot is taken (on Hostinger
one would destroy R's rollback point); only if the provider says R's snapshot is gone is a new one taken, as
for any change. Nothing is deleted (the new release is renamed aside); a rollback of a run that never touched a
service, of a run a later change followed, or of a run already rolled back is refused; preflight checks that
the previous tree and the dump are there and readable before anything stops. The ledger links the rollback to
R, and a successful one clears R's "failed" state. It runs only through `opsguard rollback`: `run` and a
``--var rolled_back`` are refused.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from opsguard import ledger as events
from opsguard.errors import ConfigError, Refused
from opsguard.hostfacts import parse_pm2_jlist
from opsguard.inventory import Host
from opsguard.ledger import Ledger
from opsguard.plan import Check, Plan, Poll, Step
from opsguard.playbooks import platform_upgrade as zpro
from opsguard.playbooks import stack_upgrade as stack
from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.common import (
    CHANNELS_CONNECTED_FACT,
    PM2_JLIST,
    channels_back_step,
    dumps_problem,
    guarded,
    http_status_check,
    http_status_command,
    number_param,
    path_param,
    pm2_not_running,
    quote,
    service_dumps_command,
    timestamp_param,
    word_list,
)
from opsguard.rollbackrules import chain_problem, later_change, rolled_back_by

KIND: Final = "change"
NAME = "rollback"
UPGRADES = ("platform_upgrade", "stack_upgrade")  # the playbooks whose runs can be rolled back
COMPOSE_OVERRIDE = "docker-compose.opsguard-rollback.yml"  # written beside the compose file: the pinned images

VARS: dict[str, Any] = {
    "restore_timeout": 3600.0,  # seconds for pg_restore of a dump
}
OPTIONS: dict[str, Any] = {"rolled_back": None}
REQUIRED: dict[str, str] = {"rolled_back": "the run to undo: use `opsguard rollback HOST [--run RUN]` (it reads the run from the ledger)"}
_SHELL_WORD = re.compile(r"[A-Za-z0-9_.-]+")


# -- what run R did, from the ledger -----------------------------------------------------------------------


def rollback_source(ledger: Ledger, host: str, run: str | None = None) -> dict[str, Any]:
    """Given this machine's ledger, a host and the run to undo (None: the host's last upgrade), return what the
    rollback plan is built from: {run, playbook, outcome, failed_step, snapshot_id, params, facts, started}.

    Raise Refused (exit 3, nothing changed) when there is no such upgrade, its records in the ledger are not intact
    (hash chain), a later change came after it, it was already rolled back, it left no record of what a rollback
    needs, or it changed nothing to undo. The guard checks the same again with the locks held, and the host's
    records too (``opsguard.rollbackrules``).
    """
    records = ledger.records(host)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_run.setdefault(record["run_id"], []).append(record)
    upgrades = [record["run_id"] for record in records
                if record.get("event") == events.RUN_STARTED and record.get("command") in UPGRADES
                and _verified(by_run[record["run_id"]])]  # fmt: skip
    if not upgrades:
        raise Refused(f"host {host}: this machine's ledger has no platform or stack upgrade of it to roll back")
    chosen = run or upgrades[-1]
    if chosen not in upgrades:
        raise Refused(f"host {host}: run {chosen} is not a platform or stack upgrade of it in this machine's ledger "
                      f"(its upgrades: {', '.join(upgrades[-5:])})")
    broken = chain_problem(ledger.path, host, chosen)
    if broken:
        raise Refused(f"host {host}: {broken}")
    undone = rolled_back_by(records, chosen)
    if undone:
        raise Refused(f"host {host}: run {chosen} was already rolled back by run {undone}")
    later = later_change(records, chosen)
    if later:
        raise Refused(f"host {host}: {later}")
    own = by_run[chosen]
    facts_records = [record for record in own if record.get("event") == events.RUN_FACTS]
    if not facts_records or not isinstance(facts_records[-1].get("params"), dict):
        raise Refused(f"host {host}: run {chosen} left no record of what a rollback needs (an older opsguard made it): "
                      "follow the rollback advice it printed, or restore its snapshot")
    ended = [record for record in own if record.get("event") == events.RUN_ENDED]
    verified = [record for record in own if record.get("event") == events.SNAPSHOT_VERIFIED]
    source = {
        "run": chosen,
        "playbook": str(facts_records[-1].get("playbook")),
        "outcome": str(ended[-1].get("outcome")) if ended else events.UNKNOWN,
        "failed_step": ended[-1].get("failed_step") if ended else None,
        "snapshot_id": (verified[-1].get("receipt") or {}).get("snapshot_id"),
        "params": facts_records[-1]["params"],
        "facts": facts_records[-1].get("facts") or {},
        "started": [str(record.get("step")) for record in own
                    if record.get("event") == events.STEP and record.get("phase") == "started"],
    }  # fmt: skip
    problem = nothing_to_undo(source)
    if problem:
        raise Refused(f"host {host}: {problem}")
    return source


def _verified(records: list[dict[str, Any]]) -> bool:
    return any(record.get("event") == events.SNAPSHOT_VERIFIED and not record.get("reused_from") for record in records)


def nothing_to_undo(source: Mapping[str, Any]) -> str | None:
    """Given a rollback source, return why there is nothing to undo (the run never touched a service), else None."""
    started = set(source.get("started") or ())
    run = source.get("run")
    if source.get("playbook") == "platform_upgrade" and zpro.STOP_STEP not in started:
        return (f"run {run} stopped before {zpro.STOP_STEP!r}: the live site was never touched, nothing to roll back "
                "(its staging tree and backup dir can be removed by hand)")
    if source.get("playbook") == "stack_upgrade" and stack.RECREATE_STEP not in started:
        return (f"run {run} stopped before {stack.RECREATE_STEP!r}: the containers still run the old images, nothing "
                "to roll back (pulled images are pruned by the next upgrade)")
    return None


# -- the plan ----------------------------------------------------------------------------------------------


def plan(host: Host, params: Mapping[str, Any]) -> Plan:
    """Given a host and params (VARS + ``rolled_back``: the JSON of rollback_source), return the rollback plan.

    Raise ConfigError if the record is malformed, is of another playbook, or leaves nothing to undo.
    """
    source = _parse_source(params.get("rolled_back"))
    problem = nothing_to_undo(source)
    if problem:
        raise ConfigError(problem)
    if source["playbook"] == "platform_upgrade":
        return _zpro_plan(host, params, source)
    return _stack_plan(host, params, source)


def _parse_source(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ConfigError("needs the run to undo: use `opsguard rollback HOST [--run RUN]`")
    try:
        source = json.loads(text)
    except ValueError:
        raise ConfigError("param rolled_back: not the JSON record of a run") from None
    if not isinstance(source, dict):
        raise ConfigError("param rolled_back: not the JSON record of a run")
    if not isinstance(source.get("run"), str) or not events.RUN_ID.fullmatch(source["run"]):
        raise ConfigError(f"param rolled_back: run {source.get('run')!r} is not a run id")
    if source.get("playbook") not in UPGRADES:
        raise ConfigError(f"param rolled_back: run {source['run']} was a {source.get('playbook')!r}, not one of {', '.join(UPGRADES)}")
    for key, kind in (("params", dict), ("facts", dict), ("started", list)):
        if not isinstance(source.get(key), kind):
            raise ConfigError(f"param rolled_back: {key} of run {source['run']} is missing or malformed")
    return source


def _fact(source: Mapping[str, Any], name: str, pattern: re.Pattern[str] = _SHELL_WORD) -> str:
    """Given the source and a fact name, return R's fact as one safe shell word; raise ConfigError if absent or unsafe."""
    value = source["facts"].get(name)
    words = shlex.split(value) if isinstance(value, str) else []
    if len(words) != 1 or not pattern.fullmatch(words[0]):
        raise ConfigError(f"param rolled_back: run {source['run']} recorded no usable {name} ({value!r})")
    return words[0]


def _advice(host: Host, source: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        f"the rollback of run {source['run']} did not complete; fix the cause and run it again "
        f"(opsguard rollback {host.name} --run {source['run']}): each of its steps looks at the host before it acts",
        f"last resort: opsguard restore {host.name} --snapshot {{snapshot_id}}",
    )


# -- Zpro --------------------------------------------------------------------------------------------------


def _zpro_plan(host: Host, params: Mapping[str, Any], source: dict[str, Any]) -> Plan:
    layout = zpro.ZproLayout(source["params"])
    started = set(source["started"])
    migrated = zpro.MIGRATE_STEP in started
    swapped = bool(started & {zpro.MEDIA_STEP, zpro.KEEP_STEP, zpro.LIVE_STEP})
    facts = {
        "rolled_back_run": source["run"],
        "postgres_user": _fact(source, "postgres_user"),
        "postgres_db": _fact(source, "postgres_db"),
        "backend_port": _fact(source, "backend_port", re.compile(r"\d{1,5}")),
    }
    channels = layout.channels if CHANNELS_CONNECTED_FACT in source["facts"] else None
    if channels is not None:
        facts[CHANNELS_CONNECTED_FACT] = _fact(source, CHANNELS_CONNECTED_FACT, re.compile(r"[A-Za-z0-9_.,:-]+"))
    deploy = layout.deploy_user
    names = f"{quote(layout.backend)} {quote(layout.frontend)}"
    preflight = [_pm2_listed_step(layout)]
    if swapped:
        preflight.append(_trees_step(layout, started))
    if migrated:
        preflight.append(replace(zpro.verify_dump_step(layout), name="the run's dump is there and readable (pg_restore -l)",
                                 why="checked before anything stops: the restore depends on it"))
    change: list[Step] = []
    if migrated or swapped:
        change.append(Step(name="stop the apps by name", command=f"pm2 stop {names}", mutates=True, timeout=120,
                           downtime="starts", why="nothing may write to the database or run the code while they are put back",
                           sudo_user=deploy))  # fmt: skip
    if migrated:
        change.append(Step(
            name="restore the database from the run's dump (pg_restore --clean --if-exists)",
            command=(f"docker exec -i {quote(layout.db_container)} pg_restore --clean --if-exists -U {{{{postgres_user}}}} "
                     f"-d {{{{postgres_db}}}} < {quote(layout.dump)}"),
            mutates=True,
            timeout=number_param(params, "restore_timeout", minimum=1),
            why=f"run {source['run']} started the migrate, which has no undo: the dump taken right before it is the way "
            "back (what was written after the dump started is lost)",
        ))  # fmt: skip
    if swapped:
        change.append(_code_back_step(layout))
    change.append(Step(
        name="restart the apps by name",
        command=f"pm2 restart {names} --update-env && pm2 save",
        mutates=True,
        timeout=180,
        downtime=None if change else "starts",
        why="by name, never 'all'; pm2 save keeps the list for a reboot",
        sudo_user=deploy,
    ))  # fmt: skip
    every = min(layout.every, 2.0)
    verify = [
        Step(name="backend answers on localhost:PORT", command=http_status_command("http://localhost:{{backend_port}}/"),
             mutates=False, timeout=15, poll=Poll(every=every, within=layout.health_wait), downtime="ends",
             check=http_status_check("any HTTP status: the backend is listening", lambda status: 100 <= status <= 599)),
        Step(name="frontend answers 2xx/3xx", command=http_status_command(f"http://localhost:{layout.frontend_port}/"),
             mutates=False, timeout=15, poll=Poll(every=every, within=layout.health_wait),
             check=http_status_check("HTTP 200-399", lambda status: 200 <= status <= 399)),
        *([channels_back_step(layout.db_container, channels, wait=layout.channels_wait, every=every)] if channels else []),
        zpro.pm2_online_step(layout, "pm2 processes online after the restart", "after"),
        zpro.pm2_stable_step(layout),
        zpro.migration_step(layout, "no migration left down", check=Check("every migration up", guarded(zpro.no_migration_down))),
    ]  # fmt: skip
    what = [part for part, done in (("database restored from the dump", migrated), ("previous code tree back", swapped)) if done]
    return Plan(
        playbook=NAME,
        host=host.name,
        kind=KIND,
        summary=(f"undo Zpro upgrade run {source['run']} ({source['outcome']}"
                 + (f" at {source['failed_step']!r}" if source.get("failed_step") else "")
                 + f"): {', '.join(what) or 'the apps restarted'}; no provider restore"),
        preflight=tuple(preflight),
        change=tuple(change),
        verify=tuple(verify),
        rollback=_advice(host, source),
        params={**params, **facts},
    )


def _pm2_listed_step(layout: zpro.ZproLayout) -> Step:
    def test(stdout: str) -> str | None:
        if pm2_not_running(stdout):
            return "pm2 is not running for the deploy user: start it (pm2 resurrect) before the rollback restarts the apps"
        listed = {process.name for process in parse_pm2_jlist(stdout)}
        missing = [name for name in (layout.backend, layout.frontend) if name not in listed]
        return f"{', '.join(missing)} not in pm2's list: the restart by name would fail" if missing else None

    return Step(name="pm2 knows both apps (as the deploy user)", command=PM2_JLIST, mutates=False, timeout=60,
                sudo_user=layout.deploy_user, check=Check(f"{layout.backend} and {layout.frontend} listed", guarded(test)))


def _trees_step(layout: zpro.ZproLayout, started: set[str]) -> Step:
    paths = [layout.app_dir, layout.previous, layout.staging]

    def test(stdout: str) -> str | None:
        present = {line[len("exists ") :] for line in stdout.splitlines() if line.startswith("exists ")}
        if zpro.KEEP_STEP in started and layout.previous not in present:
            return (f"the previous tree {layout.previous} is not there (put back by hand already?): restore the code from "
                    "the copies off the host or the provider snapshot")
        if layout.app_dir not in present and layout.previous not in present:
            return f"neither {layout.app_dir} nor {layout.previous} is there"
        return None

    return Step(
        name="the trees the rollback moves are there",
        command=f'for path in {" ".join(quote(path) for path in paths)}; do if [ -e "$path" ]; then echo "exists $path"; fi; done',
        mutates=False,
        timeout=30,
        check=Check("the previous tree (kept by the run) is there to put back", guarded(test)),
    )


def _code_back_step(layout: zpro.ZproLayout) -> Step:
    app, previous, staging = quote(layout.app_dir), quote(layout.previous), quote(layout.staging)
    lines = [
        # The live tree was renamed to previous: the tree at app_dir (if any) is the new release; it goes back to
        # staging (never deleted), then previous is live again.
        f"if [ -e {previous} ]; then",
        f"  if [ -e {app} ]; then mv -T {app} {staging} || exit 1; fi",
        f"  mv -T {previous} {app} || exit 1",
        "fi",
        *(f"if [ -e {quote(layout.staging + '/' + moved)} ] && [ ! -e {quote(layout.app_dir + '/' + moved)} ]; then "
          f"mv -T {quote(layout.staging + '/' + moved)} {quote(layout.app_dir + '/' + moved)} || exit 1; fi"
          for moved in layout.moved_dirs),
    ]  # fmt: skip
    return Step(
        name="put the previous code tree back (and the media into it)",
        command="\n".join(lines),
        mutates=True,
        timeout=60,
        why="renames on one filesystem, each done only if the run's swap got that far: the new release is kept "
        "aside as the staging tree, never deleted",
    )


# -- compose stack -----------------------------------------------------------------------------------------


def _stack_plan(host: Host, params: Mapping[str, Any], source: dict[str, Any]) -> Plan:
    run_params = source["params"]
    compose_dir = path_param(run_params, "compose_dir")
    run_backup = f"{path_param(run_params, 'backup_dir')}/{timestamp_param(run_params)}"
    compose_files = _compose_files_used(source)
    every = number_param(run_params, "poll_every", minimum=0.01)
    health_wait = number_param(run_params, "health_wait", minimum=0)
    digests = _digest_pairs(source)
    lists = {}
    for name in ("services", "db_services", "app_services"):
        value = source["facts"].get(name)
        try:
            lists[name] = word_list(str(value).split())
        except ValueError:
            raise ConfigError(f"param rolled_back: run {source['run']} recorded no usable {name} ({value!r})") from None
    in_dir = f"cd {quote(compose_dir)} && "
    # The files R's `docker compose` read (R recorded them), then the pins on top: -f replaces compose's defaults,
    # so without them an override file or COMPOSE_FILE that R's compose read would be left out.
    used = " ".join(f"-f {quote(name)}" for name in compose_files)
    files = f"{used} -f {quote(COMPOSE_OVERRIDE)}"
    override = ["services:", *(line for service, reference in digests for line in (f"  {service}:", f"    image: {reference}"))]
    health = stack.health_steps(run_params, every, health_wait)
    if not health:
        raise ConfigError("the run's n8n_url and typebot_viewer_url are both empty: nothing would prove the stack healthy")
    preflight = (
        Step(name="compose file valid", command=in_dir + f"docker compose {used} config -q", mutates=False, timeout=60),
        Step(
            name="the run's dumps are there and readable",
            command=service_dumps_command(compose_dir, run_backup, f"docker compose {used}"),
            mutates=False,
            timeout=600,
            check=Check("every database dump of the run non-empty and listed by pg_restore -l", guarded(dumps_problem)),
        ),
    )
    change = (
        Step(name="stop the app services", command=in_dir + f"docker compose {used} stop {{{{app_services}}}}", mutates=True,
             timeout=300, downtime="starts", why="nothing may write to the databases while they are restored"),
        Step(
            name="restore the databases from the run's dumps (pg_restore --clean --if-exists)",
            command="\n".join([
                f"cd {quote(compose_dir)} || exit 1",
                "for service in {{db_services}}; do",
                f"  docker compose {used} exec -T \"$service\" "
                "sh -c 'pg_restore --clean --if-exists -U \"${POSTGRES_USER:-postgres}\" "
                "-d \"${POSTGRES_DB:-${POSTGRES_USER:-postgres}}\"' "
                f"< {quote(run_backup)}/\"$service.dump\" || exit 1",
                "done",
            ]),
            mutates=True,
            timeout=number_param(params, "restore_timeout", minimum=1),
            why="n8n and Typebot migrate their databases on start, one way: the dumps taken before the pull are the way "
            "back (what was written after them is lost)",
        ),
        Step(
            name="pin every service to the image it ran before the run",
            command=f"printf '%s\\n' {' '.join(quote(line) for line in override)} > {quote(compose_dir + '/' + COMPOSE_OVERRIDE)}",
            mutates=True,
            timeout=30,
            why=f"a compose override beside the compose file, by registry digest; a plain `docker compose up` goes back "
            f"to the configured tags: pin them in the compose file, or keep -f {COMPOSE_OVERRIDE}",
        ),
        Step(name="recreate the services on the recorded images", command=in_dir + f"docker compose {files} up -d --remove-orphans",
             mutates=True, timeout=900),
        *stack.with_downtime_end(health),
    )
    verify = (
        Step(
            name="every service running (healthy where it has a healthcheck)",
            command='echo "expected={{services}}"; ' + in_dir + f"docker compose {files} ps -a --format json",
            mutates=False,
            timeout=60,
            check=Check("each service has a running container, none unhealthy", guarded(stack.services_problem)),
            poll=Poll(every=every, within=health_wait),
        ),
    )
    return Plan(
        playbook=NAME,
        host=host.name,
        kind=KIND,
        summary=(f"undo stack upgrade run {source['run']} ({source['outcome']}): databases restored from its dumps, "
                 f"{len(digests)} services pinned to their recorded images; no provider restore"),
        preflight=preflight,
        change=change,
        verify=verify,
        rollback=_advice(host, source),
        params={**params, **lists, "rolled_back_run": source["run"]},
    )


def _compose_files_used(source: Mapping[str, Any]) -> list[str]:
    """Given the source, return the compose files R's `docker compose` read; raise ConfigError if none is recorded or one
    is not a plain path (an empty list would leave only the pins: services without their configuration)."""
    value = source["facts"].get(stack.COMPOSE_FILES_FACT)
    names = str(value or "").split()
    try:
        word_list(names)
    except ValueError:
        names = []
    if not names:
        raise ConfigError(f"param rolled_back: run {source['run']} recorded no usable {stack.COMPOSE_FILES_FACT} ({value!r}): "
                          "follow the rollback advice it printed")
    return names


def _digest_pairs(source: Mapping[str, Any]) -> list[tuple[str, str]]:
    value = source["facts"].get("image_digests")
    pairs = [word.split("=", 1) for word in str(value or "").split() if "=" in word]
    try:
        word_list(f"{service}={reference}" for service, reference in pairs)
    except ValueError:
        pairs = []
    if not pairs:
        raise ConfigError(f"param rolled_back: run {source['run']} recorded no image digests ({value!r})")
    return [(service, reference) for service, reference in pairs]


# -- the examples the safety tests build -------------------------------------------------------------------


def _example(playbook: str, started: list[str], params: dict[str, Any], facts: dict[str, str]) -> Example:
    source = {"run": "20250101T000000Z-abcdef", "playbook": playbook, "outcome": "failed", "failed_step": started[-1],
              "snapshot_id": "snap-1", "params": {**params, "ts": "20250101T000000Z"}, "facts": facts, "started": started}
    return Example(roles=(), options={"rolled_back": json.dumps(source)})


# The run's recorded params: every path under /data, so the safety tests still catch a system path written in code.
_ZPRO_PARAMS = {**zpro.VARS, "package": "/data/update.zip", "package_sha256": "0" * 64, "app_dir": "/data/zpro.io",
                "backup_dir": "/data/backups", "pm2_log_dir": "/data/pm2-logs", "nginx_sites_dir": "/data/nginx"}
_ZPRO_FACTS = {"postgres_user": "zpro", "postgres_db": "zpro", "backend_port": "3000", CHANNELS_CONNECTED_FACT: "1,2"}
_STACK_FACTS = {"services": "db n8n", "db_services": "db", "app_services": "n8n", stack.COMPOSE_FILES_FACT: "docker-compose.yml",
                "image_digests": "db=postgres@sha256:" + "1" * 64 + " n8n=n8nio/n8n@sha256:" + "2" * 64}

PLAYBOOK = Playbook(
    name=NAME,
    kind=KIND,
    summary="undo the last (or --run) platform or stack upgrade without a provider restore, under its snapshot",
    variables=VARS,
    options=OPTIONS,
    required=REQUIRED,
    roles=(),  # never picked by `upgrade`: run through `opsguard rollback HOST`
    build=plan,
    examples=(
        _example("platform_upgrade", [zpro.STOP_STEP, zpro.MIGRATE_STEP, zpro.MEDIA_STEP, zpro.KEEP_STEP, zpro.LIVE_STEP,
                                      "restart the apps by name"], _ZPRO_PARAMS, _ZPRO_FACTS),
        _example("platform_upgrade", [zpro.STOP_STEP], _ZPRO_PARAMS, _ZPRO_FACTS),
        _example("stack_upgrade", [stack.PULL_STEP, stack.RECREATE_STEP],
                 {**stack.VARS, "compose_dir": "/data/stack", "backup_dir": "/data/backups"}, _STACK_FACTS),
    ),
)
