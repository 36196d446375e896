"""pm2: the deploy user's process manager, which runs the Zpro backend and frontend.

What the playbooks see of the real pm2:

- the apps (PM2_APPS) belong to the deploy user: root's pm2 list is empty, and so is an
  integrations host's;
- stop / start / restart / reload / delete change an app's status, saved in stub-state so that
  ``pm2 jlist`` reads it back; restart and reload count a restart; an unknown (or deleted) app is
  an error; ``all`` means every app;
- any pm2 command first starts the calling user's daemon when none runs, writing ~/.pm2/pm2.pid
  and the daemon's socket ~/.pm2/rpc.sock (HOME is that user's home, as `sudo -i` sets it); the
  journal records whether it was running. A daemon runs when its pid file names a live process whose
  command line is the daemon's title (it names PM2) and its socket is there: what opsguard's probe
  (readonly.PM2_DAEMON_RUNNING) tests. The sandbox keeps one real process with that title for every
  host (its pid in <root>/pm2-daemon.pid): a started daemon is that process;
- a stopped app's port refuses connections (``app_listening``, read by the curl fake);
- restart / reload / start of the backend makes its WhatsApp channels reconnect (channels.py).
"""

from __future__ import annotations

import os
import time

from .core import Call, err, load_state, out, save_state, to_json

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# name, port, directory under the app dir, script: the Zpro apps pm2 runs for the deploy user.
PM2_APPS = (("zpro-backend", "3000", "backend", "dist/server.js"), ("zpro-frontend", "4444", "frontend", "server.js"))


def pm2_apps(call: Call) -> dict[str, list[Any]]:
    """Return {app name: [status, restart count, pm_uptime ms]} of the deploy user's pm2 apps, as the last call left them.

    Apps nobody touched were started 30 s after the host booted (btime in <root>/proc/stat). A test
    scripts a history through stub-state "pm2": {name: [status, restarts, pm_uptime ms]}.
    """
    started = int((boot_time(call) + 30) * 1000)
    apps: dict[str, list[Any]] = {name: ["online", 0, started] for name, *_ in PM2_APPS}
    saved = load_state(call, "pm2", {})
    if isinstance(saved, dict):
        for name, value in saved.items():
            if name in apps:
                apps[name] = [*list(value)[:3], *apps[name][len(list(value)[:3]):]]
    return apps


def boot_time(call: Call) -> float:
    """Return the host's boot time (btime of <root>/proc/stat), else ten days ago."""
    try:
        with open(os.path.join(call.root, "proc", "stat"), encoding="utf-8") as source:
            for line in source:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return time.time() - 10 * 86400


def pm2_pid_file() -> str:
    """Return the pm2 daemon's pid file of the calling user (HOME is the user's home, as sudo -i sets it)."""
    return os.path.join(os.environ.get("HOME", ""), ".pm2", "pm2.pid")


def pm2_daemon_running() -> bool:
    """Return whether the calling user's pm2 daemon runs: its pid file names a live process whose command
    line names PM2 (the daemon's title), and its socket file is there."""
    try:
        with open(pm2_pid_file()) as source:
            pid = int(source.read().strip())
        socket_mode = os.stat(os.path.join(os.path.dirname(pm2_pid_file()), "rpc.sock")).st_mode
        with open(f"/proc/{pid}/cmdline", "rb") as source:
            title = source.read()
    except (OSError, ValueError):
        return False
    return pid > 0 and (socket_mode & 0o170000) == 0o140000 and b"PM2" in title


def write_daemon_files(pm2_home: str, pid: int | str) -> None:
    """Given a user's ~/.pm2 and the pid of a process titled as the daemon, leave what a started daemon leaves:
    its pid file and its socket (a socket inode: nothing listens on it in the sandbox)."""
    os.makedirs(pm2_home, exist_ok=True)
    with open(os.path.join(pm2_home, "pm2.pid"), "w") as target:
        target.write(f"{pid}\n")
    socket_file = os.path.join(pm2_home, "rpc.sock")
    if os.path.lexists(socket_file):
        os.unlink(socket_file)
    os.mknod(socket_file, 0o140600)  # S_IFSOCK | 0600


def start_daemon(call: Call) -> None:
    """Start the calling user's daemon as the real pm2 does before any command: here, point it at the
    sandbox's process titled as the daemon (<root>/pm2-daemon.pid)."""
    try:
        with open(os.path.join(call.root, "pm2-daemon.pid")) as source:
            pid = source.read().strip()
    except OSError:
        pid = "0"  # no stand-in process: the daemon is written down but never found running
    write_daemon_files(os.path.dirname(pm2_pid_file()), pid)


def journal_fields() -> dict[str, Any]:
    """Return what the journal adds to a pm2 call: pm2 starts its daemon (writing ~/.pm2) when none runs."""
    return {"pm2_daemon": pm2_daemon_running()}


def pm2(call: Call) -> int:
    """Answer a pm2 command (jlist, prettylist, stop, restart, reload, start, delete, describe, save)."""
    if not call.args:
        return 0
    action = call.args[0]
    if not pm2_daemon_running():
        # Like the real pm2: any command starts the daemon first, writing ~/.pm2.
        start_daemon(call)
    # Like the real hosts: pm2 apps belong to the deploy user; root's pm2 list is empty.
    mine = call.profile == "zpro" and call.user not in ("", "root")
    apps = pm2_apps(call) if mine else {}
    if action in ("jlist", "prettylist"):
        listed = [app for app in PM2_APPS if app[0] in apps and apps[app[0]][0] != "deleted"]
        out(to_json([pm2_process(call, index, app, apps[app[0]]) for index, app in enumerate(listed)]) + "\n")
        return 0
    if action in ("stop", "restart", "reload", "start", "delete", "describe"):
        names = [name for name in call.args[1:] if not name.startswith("-")]
        for name in names:
            if name != "all" and (name not in apps or apps[name][0] == "deleted"):
                err(f"[PM2][ERROR] Process or Namespace {name} not found\n")
                return 1
        chosen = [name for name in apps if apps[name][0] != "deleted"] if "all" in names else names
        for name in chosen:
            if action == "stop":
                apps[name][0] = "stopped"
            elif action in ("restart", "reload"):
                apps[name] = ["online", int(apps[name][1]) + 1, int(time.time() * 1000)]
            elif action == "start":
                apps[name][0] = "online"
                apps[name][2] = int(time.time() * 1000)
            elif action == "delete":
                apps[name][0] = "deleted"
        if action != "describe":
            save_state(call, "pm2", apps)
        if action in ("restart", "reload", "start") and PM2_APPS[0][0] in chosen:
            from .channels import backend_restarted

            backend_restarted(call)
        out(f"[PM2] Applying action {action}ProcessId on app [{' '.join(names)}]\n")
        out("".join(f"[PM2] [{name}] \u2713\n" for name in chosen))
        return 0
    if action == "save":
        out("[PM2] Saving current process list...\n[PM2] Successfully saved\n")
    return 0


def pm2_process(call: Call, index: int, app: tuple[str, str, str, str], state: list[Any]) -> dict[str, Any]:
    """Given an app and its [status, restarts], return its entry in ``pm2 jlist`` (the fields scripts read)."""
    name, port, directory, script = app
    status, restarts, uptime = str(state[0]), int(state[1]), int(state[2])
    cwd = os.path.join(call.root, "home", "deployzdg", "zpro.io", directory)
    return {
        "pid": 4100 + index + 100 * restarts if status == "online" else 0,
        "name": name,
        "pm_id": index,
        "monit": {"memory": 180_000_000 if status == "online" else 0, "cpu": 1 if status == "online" else 0},
        "pm2_env": {
            "name": name,
            "status": status,
            "restart_time": restarts,
            "unstable_restarts": 0,
            "pm_uptime": uptime,
            "pm_cwd": cwd,
            "pm_exec_path": os.path.join(cwd, script),
            "exec_mode": "fork_mode",
            "PORT": port,
            "username": call.user,
        },
    }


def app_listening(call: Call, port: str) -> bool:
    """Given a TCP port on localhost, return whether something answers there (a Zpro app only while pm2 runs it)."""
    if call.profile != "zpro":
        return True
    names = [name for name, app_port, *_ in PM2_APPS if app_port == port]
    if not names:
        return True
    apps = pm2_apps(call)
    return all(apps[name][0] == "online" for name in names)
