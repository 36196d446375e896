"""sudo: runs the command as if it had switched user, without ever switching (same uid).

The target user is root unless -u USER / --user=USER (or a cluster ending in u, such as -iu) names
another: USER and LOGNAME are set to it, HOME to its home inside the sandbox root (as `sudo -H` and
`sudo -i` set it; the pm2 fake finds its daemon there) and SUDO_USER to the caller. With -i the command
line is escaped and run by a login shell as the real sudo does (see below). The command is looked
up in PATH, so a stubbed command runs its stub again (journaled as its own call). sudo leaves
stdin unread: the command it runs reads it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .core import Call, err

CONSUMES_STDIN = False  # the command sudo runs reads stdin (dispatch leaves it unread)


def sudo(call: Call) -> int:
    """Run the command as if sudo had switched user: same uid (never switch), USER set to the target."""
    args, target, index, login = call.args, "root", 0, False
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-"):
            break
        if arg.startswith("--user="):
            target = arg.split("=", 1)[1]
        elif arg in ("-u", "--user") or (not arg.startswith("--") and arg.endswith("u")):
            index += 1
            target = args[index] if index < len(args) else target
        login = login or arg == "--login" or (not arg.startswith("--") and "i" in arg[1:])
        index += 1
    command = args[index:]
    if not command:
        return 0
    # -H and -i set HOME to the target's home: inside the sandbox root, as the layout has it.
    home = os.path.join(call.root, "root") if target == "root" else os.path.join(call.root, "home", target)
    environment = dict(os.environ, USER=target, LOGNAME=target, HOME=home, SUDO_USER=call.user or "root")
    if login:
        # As the real sudo does for -i: every character of the command but letters, digits, '_', '-' and '$' is
        # escaped with a backslash, the words joined by spaces, and the target's login shell runs that line with
        # -c, from the target's home. So a '$NAME' inside quotes is expanded once more (the third review's
        # finding, which a faithful fake makes visible to the tests).
        line = " ".join("".join(c if (c.isascii() and c.isalnum()) or c in "_-$" else "\\" + c for c in word) for word in command)
        command = ["bash", "-c", line]
        with contextlib.suppress(OSError):
            os.chdir(home)
    elif command[:2] in (["bash", "--login"], ["bash", "-l"]):
        # Not modelled: a login shell's profile (the test machine's /etc/profile would reset PATH past the stubs).
        command = ["bash", *command[2:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, environment)
    except OSError as error:
        err(f"sudo: {command[0]}: {error.strerror}\n")
    return 127
