"""Reading a sandbox host's journal: which recorded system commands would have changed the host.

One classifier for the demo and the tests, so "refused => nothing mutating ran" means the same
thing everywhere. It errs on the side of calling a command mutating.
"""

from __future__ import annotations

# (tool, sub-command words that change the host). An empty tuple: every call of the tool changes it.
_MUTATING: dict[str, tuple[str, ...]] = {
    "apt-get": ("install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge", "autoremove"),
    "apt": ("install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge", "autoremove"),
    "dpkg": ("-i", "--install", "--configure", "-r", "--remove", "-P", "--purge"),
    "pm2": ("stop", "restart", "start", "reload", "delete", "save", "kill", "update", "resurrect"),
    "npm": ("install", "ci", "run", "update", "uninstall"),
    "npx": ("db:migrate", "db:migrate:undo", "db:seed:all"),
    "systemctl": ("restart", "reload", "stop", "start", "enable", "disable", "mask", "daemon-reload", "reboot"),
    "service": ("restart", "reload", "stop", "start"),
    "docker": ("up", "pull", "down", "rm", "stop", "restart", "prune", "kill", "run", "create"),
    "ufw": ("enable", "disable", "reset", "allow", "deny", "delete"),
    "reboot": (),
    "shutdown": (),
    "certbot": (),
}


def is_mutating_call(argv: list[str]) -> bool:
    """Given a recorded stub call (argv), return whether that command changes the host."""
    if not argv:
        return False
    if argv[0] == "sudo":
        # sudo -n -iu USER -- sh -c 'CMD': the inner command is recorded as its own call by its stub.
        return False
    if argv[0] == "needrestart":
        # -r a / -r i restart services; -r l (list) and -b (batch report) only read.
        modes = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-r"] + [w[2:] for w in argv if w.startswith("-r") and len(w) > 2]
        return any(mode in ("a", "i") for mode in modes)
    words = _MUTATING.get(argv[0])
    if words is None:
        return False
    if not words:
        return True
    simulated = {"-s", "--simulate", "--dry-run"} & set(argv)
    if argv[0] in ("apt-get", "apt") and simulated:
        return False
    if argv[0] == "npx":
        return any(word in argv for word in words) and "db:migrate:status" not in argv
    return any(word in argv[1:] for word in words)


def mutating_calls(journal: list[dict[str, object]]) -> list[list[str]]:
    """Given a host's journal records, return the argv of every call that changes the host."""
    calls = [record.get("argv") for record in journal]
    return [list(map(str, call)) for call in calls if isinstance(call, list) and is_mutating_call(list(map(str, call)))]
