"""A team's Fabric tasks, written for plain Fabric: the sample `opsguard fab` runs under the guard in the tests.

Every host path starts at ROOT (the sandbox host's root, passed as --root): a sandbox host runs
commands as this machine's user, and SFTP's relative paths would start in that user's real home.
"""

import io
from pathlib import Path

from fabric import task

NOTES = Path(__file__).with_name("release-notes.txt")


def app_dir(root):
    return f"{root}/home/deployzdg/zpro.io"


@task
def deploy(c, root, version="1.0"):
    """Upload the release notes and the version, restart the backend as root, read the version back."""
    app = app_dir(root)
    c.put(str(NOTES), f"{app}/RELEASE-NOTES")
    c.put(io.StringIO(f"{version}\n"), f"{app}/VERSION")
    with c.cd(app):
        c.run(f"echo {version} > DEPLOYED")
        c.sudo("systemctl restart zpro-backend")
        shown = c.run("cat DEPLOYED", hide=True)
    print(f"deployed version {shown.stdout.strip()}")


@task
def half_done(c, root):
    """Write a marker, then a call that fails (mkdir under a file): the task stops there."""
    with c.cd(app_dir(root)):
        c.run("echo started > STATE")
        c.run("mkdir STATE/sub")
        c.run("echo finished > STATE")


@task
def raises(c, root):
    """Write a marker, then raise: a task's own error mid-way."""
    c.run(f"echo started > {app_dir(root)}/STATE")
    raise RuntimeError("the release manifest lists no backend")


@task
def raw_client(c, root):
    """Try the raw SSH client (refused: it would run commands no ledger sees)."""
    c.client.exec_command(f"touch {app_dir(root)}/BYPASS")


@task
def with_pty(c, root):
    """Ask for a pty (refused: prompts answered behind the recording)."""
    c.run(f"touch {app_dir(root)}/PTY", pty=True)


@task
def fetch(c, root, into):
    """Download nginx's backend site into a local directory (a recorded read, no SFTP)."""
    c.get(f"{root}/etc/nginx/sites-enabled/zpro-backend", f"{into}/")
