"""OS update of one host with apt: preflight, `apt-get upgrade` with safe options, compare with the baseline.

What it does: checks the disks, dpkg's state and the apt locks, records a baseline (system state, failed
units, pm2 processes on Zpro hosts, running containers), then runs `apt-get update`, records what
`apt-get -s upgrade` would change (warning on docker-ce/containerd, nodejs and kernel packages) and runs
`apt-get -y upgrade`. nginx is reloaded (after `nginx -t`) only when it was upgraded. It reboots only
when run with --allow-reboot AND the host says it needs one; otherwise it only reports that.

Why it is safe: apt waits for a held dpkg lock (DPkg::Lock::Timeout) instead of failing half-way, keeps
every local config file (confdef/confold, UCF_FORCE_CONFFOLD=1 for ucf-managed files such as
sshd_config), and needrestart only lists services (NEEDRESTART_MODE=l) instead of restarting them. It
never touches the firewall. Verification compares the host with its own baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opsguard.hostfacts import parse_apt_simulation, parse_df, parse_key_values, parse_pm2_jlist, parse_systemctl_failed
from opsguard.inventory import Host
from opsguard.plan import Check, Facts, Plan, Poll, Step
from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.common import (
    DPKG_LOCK_FILES,
    PM2_JLIST,
    apt_get,
    disk_step,
    guarded,
    lock_step,
    name_param,
    number_param,
    path_param,
    paths_param,
    quote,
    shell_word,
    word_list,
)

KIND: Final = "change"

VARS: dict[str, Any] = {
    "deploy_user": "deployzdg",  # pm2 runs as this user on Zpro hosts
    "disk_paths": ["/", "/var"],  # each must be below disk_limit_percent used
    "disk_limit_percent": 90,
    "boot_dir": "/boot",
    "boot_min_free_mb": 150,  # room for a new kernel and initramfs
    "dpkg_lock_files": DPKG_LOCK_FILES,
    "apt_lock_timeout": 600,  # seconds apt-get waits for a held dpkg lock
    "apt_timeout": 3600.0,  # seconds for the upgrade itself
    "reboot_required_file": "/var/run/reboot-required",
    "boot_id_file": "/proc/sys/kernel/random/boot_id",
    "reboot_wait": 900.0,  # seconds to wait for the host to come back after a reboot
    "settle_wait": 120.0,  # seconds for services to settle after the upgrade
    "poll_every": 5.0,
}

OPTIONS: dict[str, Any] = {"allow_reboot": False}

# Packages whose upgrade has side effects an operator should know about before it happens.
WARN_PACKAGES: dict[str, str] = {
    "docker-ce": "docker-ce: dockerd restarts, every container stops and starts again",
    "containerd": "containerd: every container stops and starts again",
    "nodejs": "nodejs: pm2 apps run the new node only after their next restart",
    "linux-image": "kernel: the new kernel runs only after a reboot",
}


def plan(host: Host, params: Mapping[str, Any]) -> Plan:
    """Given a host and its params (VARS + OPTIONS + ts), return the update plan; raise ConfigError on a bad param."""
    deploy_user = name_param(params, "deploy_user")
    disk_paths = paths_param(params, "disk_paths")
    limit = number_param(params, "disk_limit_percent", minimum=1)
    boot_dir = path_param(params, "boot_dir")
    boot_min_mb = number_param(params, "boot_min_free_mb")
    lock_files = paths_param(params, "dpkg_lock_files")
    lock_timeout = int(number_param(params, "apt_lock_timeout", minimum=1))
    apt_timeout = number_param(params, "apt_timeout", minimum=1)
    reboot_file = path_param(params, "reboot_required_file")
    boot_id_file = path_param(params, "boot_id_file")
    every = number_param(params, "poll_every", minimum=0.01)
    settle = number_param(params, "settle_wait", minimum=0)
    allow_reboot = params.get("allow_reboot") is True
    zpro = "zpro" in host.roles

    preflight = [
        disk_step(disk_paths, limit),
        _boot_space_step(boot_dir, boot_min_mb),
        _dpkg_audit_step(),
        lock_step(lock_files),
        _baseline_system_step(),
    ]
    if zpro:
        preflight.append(_baseline_pm2_step(deploy_user))
    preflight.append(_baseline_containers_step())
    if allow_reboot:
        preflight.append(
            Step(
                name="baseline: boot id",
                command=f"cat {quote(boot_id_file)}",
                mutates=False,
                timeout=30,
                facts=Facts(("boot_id",), lambda out: {"boot_id": shell_word(out.strip())}),
                why="after a reboot a new boot id proves the host really restarted",
            )
        )

    change = [
        Step(
            name="refresh package lists",
            command=apt_get("update", lock_timeout),
            mutates=True,
            timeout=lock_timeout + 900,
            why="apt-get update rewrites /var/lib/apt/lists",
        ),
        _simulate_step(lock_timeout),
        Step(
            name="upgrade packages",
            command=apt_get("-y upgrade", lock_timeout),
            mutates=True,
            timeout=lock_timeout + apt_timeout,
            why="plain upgrade: installs no new packages and removes none; local config files are kept",
        ),
        Step(
            name="reload nginx if it was upgraded",
            command=(
                "if [ {{nginx_upgraded}} = yes ]; then nginx -t && systemctl reload nginx; "
                "else echo 'nginx was not upgraded: no reload'; fi"
            ),
            mutates=True,
            timeout=120,
            why="a reload only after nginx -t passes: a broken config never replaces the running one",
        ),
    ]
    if allow_reboot:
        change.append(_reboot_step(reboot_file))

    verify: list[Step] = []
    if allow_reboot:
        verify.append(_back_after_reboot_step(boot_id_file, every, number_param(params, "reboot_wait", minimum=1)))
    verify.append(
        Step(
            name="services needing a restart (needrestart report)",
            command=(
                "if command -v needrestart >/dev/null 2>&1; then needrestart -r l -b; "
                "else echo 'needrestart is not installed'; fi"
            ),
            mutates=False,
            timeout=120,
            why="-r l only lists: services and the kernel that still run old code",
        )
    )
    if not allow_reboot:
        verify.append(
            Step(
                name="reboot required? (reported, not done)",
                command=(
                    f"if [ -e {quote(reboot_file)} ]; then echo reboot_required=yes; cat {quote(reboot_file + '.pkgs')} 2>/dev/null || true; "
                    "else echo reboot_required=no; fi"
                ),
                mutates=False,
                timeout=30,
                facts=Facts(("reboot_required",), lambda out: {"reboot_required": parse_key_values(out).get("reboot_required", "unknown")}),
                why="opsguard reboots only with --allow-reboot; this only tells whether one is needed",
            )
        )
    verify.append(_compare_system_step(every, settle))
    if zpro:
        verify.append(_compare_pm2_step(deploy_user, every, settle))
    verify.append(_compare_containers_step(every, settle))

    rollback = (
        "apt has no undo: the packages that changed are in the step 'list upgrades' ({{upgrade_packages}}) "
        "and in /var/log/apt/history.log on the host.",
        "a single package can be put back with: apt-get install PACKAGE=OLD_VERSION (old versions from apt-cache policy PACKAGE).",
        f"last resort: opsguard restore {host.name} --snapshot {{snapshot_id}}",
    )
    return Plan(
        playbook="update",
        host=host.name,
        kind=KIND,
        summary="apt-get upgrade with safe options" + (", reboot if required" if allow_reboot else ", no reboot"),
        preflight=tuple(preflight),
        change=tuple(change),
        verify=tuple(verify),
        rollback=rollback,
        params=dict(params),
    )


# -- preflight -------------------------------------------------------------------------------------------


def _boot_space_step(boot_dir: str, minimum_mb: float) -> Step:
    def test(stdout: str) -> str | None:
        row = parse_df(stdout)[-1]
        free_mb = row.available / 1e6
        if free_mb < minimum_mb:
            return f"{row.mount} has {free_mb:.0f} MB free (needs {minimum_mb:g} MB for a new kernel)"
        return None

    return Step(
        name="free space for a new kernel",
        command=f"df -P {quote(boot_dir)}",
        mutates=False,
        timeout=30,
        check=Check(f"{boot_dir} has >= {minimum_mb:g} MB free", guarded(test)),
        why="a kernel upgrade with a full /boot leaves dpkg half-configured",
    )


def _dpkg_audit_step() -> Step:
    def test(stdout: str) -> str | None:
        lines = [line for line in stdout.splitlines() if line.strip()]
        if lines:
            return f"dpkg --audit reports half-installed packages: {' / '.join(lines[:3])} (fix with dpkg --configure -a first)"
        return None

    return Step(
        name="dpkg state clean",
        command="dpkg --audit",
        mutates=False,
        timeout=60,
        ok_codes=(0, 1),
        check=Check("dpkg --audit prints nothing", test),
        why="upgrading on top of a broken dpkg state makes it worse",
    )


_SYSTEM_STATE = 'echo "state=$(systemctl is-system-running)"; systemctl --failed --plain --no-legend'


def _failed_units(stdout: str) -> list[str]:
    """The unit lines of ``systemctl --failed`` among our own key=value lines."""
    unit_lines = [line for line in stdout.splitlines() if "=" not in line.split(" ", 1)[0]]
    return parse_systemctl_failed("\n".join(unit_lines))


def _system_state_facts(stdout: str) -> dict[str, str]:
    state = parse_key_values(stdout).get("state")
    if not state:
        raise ValueError("systemctl printed no system state")
    return {"system_state": shell_word(state), "failed_units": shell_word(" ".join(_failed_units(stdout)))}


def _baseline_system_step() -> Step:
    return Step(
        name="baseline: system state and failed units",
        command=_SYSTEM_STATE,
        mutates=False,
        timeout=60,
        facts=Facts(("system_state", "failed_units"), _system_state_facts),
        why="verification compares with this: only units that fail after the upgrade count",
    )


def _online_pm2(stdout: str) -> dict[str, str]:
    names = [process.name for process in parse_pm2_jlist(stdout) if process.status == "online"]
    return {"pm2_online": shell_word(word_list(names))}


def _baseline_pm2_step(deploy_user: str) -> Step:
    return Step(
        name="baseline: pm2 processes online",
        command=PM2_JLIST,
        mutates=False,
        timeout=60,
        sudo_user=deploy_user,
        facts=Facts(("pm2_online",), _online_pm2),
        why="pm2 runs as the deploy user (root's list is empty); these must be online again afterwards",
    )


def _running_containers(stdout: str) -> dict[str, str]:
    return {"containers_running": shell_word(word_list(line.strip() for line in stdout.splitlines() if line.strip()))}


_DOCKER_NAMES = "if command -v docker >/dev/null 2>&1; then docker ps --format '{{.Names}}'; fi"


def _baseline_containers_step() -> Step:
    return Step(
        name="baseline: running containers",
        command=_DOCKER_NAMES,
        mutates=False,
        timeout=60,
        facts=Facts(("containers_running",), _running_containers),
        why="an upgrade of docker-ce/containerd restarts every container; these must run again afterwards",
    )


# -- change ----------------------------------------------------------------------------------------------


def upgrade_warnings(packages: list[str]) -> list[str]:
    """Given the package names an upgrade would touch, return one warning per risky kind, in WARN_PACKAGES order."""
    warnings = []
    for prefix, warning in WARN_PACKAGES.items():
        if any(package == prefix or package.startswith(prefix) for package in packages):
            warnings.append(warning)
    return warnings


def _simulation_facts(stdout: str) -> dict[str, str]:
    packages = [change.package for change in parse_apt_simulation(stdout)]
    nginx = any(package.startswith(("nginx", "libnginx")) for package in packages)
    return {
        "upgrade_count": str(len(packages)),
        "upgrade_packages": shell_word(word_list(packages)),
        "upgrade_warnings": shell_word("; ".join(upgrade_warnings(packages)) or "none"),
        "nginx_upgraded": "yes" if nginx else "no",
    }


def _simulate_step(lock_timeout: int) -> Step:
    pattern = "|".join(WARN_PACKAGES)
    command = "\n".join(
        [
            f"out=$({apt_get('-s upgrade', lock_timeout)}) || exit $?",
            "printf '%s\\n' \"$out\"",
            f"printf '%s\\n' \"$out\" | grep -E '^Inst ({pattern})' | sed 's/^Inst /WARNING: this upgrade touches /' >&2 || true",
        ]
    )
    return Step(
        name="list upgrades (simulation)",
        command=command,
        mutates=False,
        timeout=lock_timeout + 300,
        facts=Facts(("upgrade_count", "upgrade_packages", "upgrade_warnings", "nginx_upgraded"), _simulation_facts),
        why="-s changes nothing: records what will change; docker-ce/containerd restart containers, nodejs and kernels need restarts",
    )


def _reboot_step(reboot_file: str) -> Step:
    # The reboot is delayed a few seconds and detached, so this command returns its exit code over SSH
    # before sshd goes down; the first verify step then waits for a new boot id.
    return Step(
        name="reboot if the host needs it (--allow-reboot)",
        command=(
            f"if [ -e {quote(reboot_file)} ]; then echo reboot_scheduled=yes; "
            "nohup sh -c 'sleep 5; systemctl reboot' >/dev/null 2>&1 & "
            "else echo reboot_scheduled=no; fi"
        ),
        mutates=True,
        timeout=60,
        # Only "yes" or "no" ever reaches the later command (it is pasted into shell text unquoted).
        facts=Facts(("reboot_scheduled",), lambda out: {"reboot_scheduled": "yes" if parse_key_values(out).get("reboot_scheduled") == "yes" else "no"}),
        why="only with --allow-reboot and only when the host asks for it",
    )


# -- verify ----------------------------------------------------------------------------------------------


def _back_after_reboot_step(boot_id_file: str, every: float, within: float) -> Step:
    command = "\n".join(
        [
            f'if [ {{{{reboot_scheduled}}}} = yes ] && [ "$(cat {quote(boot_id_file)})" = {{{{boot_id}}}} ]; then',
            "  echo 'not rebooted yet'; exit 1",
            "fi",
            "systemctl is-system-running --wait >/dev/null 2>&1",
            "echo back",
        ]
    )
    return Step(
        name="host back after the reboot",
        command=command,
        mutates=False,
        timeout=300,
        # reconnect: the reboot drops the SSH connection; the runner re-opens it (strict host keys
        # again) until the host answers or reboot_wait runs out.
        poll=Poll(every=every, within=within, reconnect=True),
        why="a new boot id shows the reboot happened; is-system-running --wait waits for boot to finish",
    )


def _compare_system_test(stdout: str) -> str | None:
    values = parse_key_values(stdout)
    state = values.get("state", "")
    before = values.get("baseline_state", "")
    failed_before = set(values.get("baseline_failed", "").split())
    new_failed = [unit for unit in _failed_units(stdout) if unit not in failed_before]
    if new_failed:
        return f"units failed since the upgrade: {', '.join(new_failed)} (system {state})"
    if state == "running" or (state and state == before):
        return None
    return f"system is {state or 'unknown'} (was {before or 'unknown'} before)"


def _compare_system_step(every: float, within: float) -> Step:
    return Step(
        name="system state compared with the baseline",
        command='echo "baseline_state="{{system_state}}; echo "baseline_failed="{{failed_units}}; ' + _SYSTEM_STATE,
        mutates=False,
        timeout=60,
        check=Check("system running (or as before), no unit failed that did not fail before", guarded(_compare_system_test)),
        poll=Poll(every=every, within=within),
    )


def _expected_listed(stdout: str, listed: set[str], what: str) -> str | None:
    first = stdout.splitlines()[0] if stdout.strip() else ""
    expected = parse_key_values(first).get("expected", "").split()
    missing = [name for name in expected if name not in listed]
    return f"{what} not back: {', '.join(missing)}" if missing else None


def _compare_pm2_step(deploy_user: str, every: float, within: float) -> Step:
    def test(stdout: str) -> str | None:
        online = {process.name for process in parse_pm2_jlist(stdout) if process.status == "online"}
        return _expected_listed(stdout, online, "pm2 processes online before the upgrade")

    return Step(
        name="pm2 processes online as before",
        command='echo "expected="{{pm2_online}}; ' + PM2_JLIST,
        mutates=False,
        timeout=60,
        sudo_user=deploy_user,
        check=Check("every pm2 process online before is online again", guarded(test)),
        poll=Poll(every=every, within=within),
    )


def _compare_containers_step(every: float, within: float) -> Step:
    def test(stdout: str) -> str | None:
        running = {line.strip() for line in stdout.splitlines()[1:] if line.strip()}
        return _expected_listed(stdout, running, "containers running before the upgrade")

    return Step(
        name="containers running as before",
        command='echo "expected="{{containers_running}}; ' + _DOCKER_NAMES,
        mutates=False,
        timeout=60,
        check=Check("every container running before runs again", guarded(test)),
        poll=Poll(every=every, within=within),
    )


PLAYBOOK = Playbook(
    name="update",
    kind=KIND,
    summary="OS update with apt: safe options, compare with the baseline, reboot only with --allow-reboot",
    variables=VARS,
    options=OPTIONS,
    required={},
    roles=(),
    build=plan,
    examples=(
        Example(roles=("zpro",)),
        Example(roles=("zpro",), options={"allow_reboot": True}),
        Example(roles=("integrations",)),
        Example(roles=("integrations",), options={"allow_reboot": True}),
    ),
)
