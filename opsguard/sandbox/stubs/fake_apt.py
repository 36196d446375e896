"""apt-get / apt, dpkg and needrestart: a Debian 12 host with three security upgrades pending.

apt update reads the lists; upgrade, dist-upgrade and full-upgrade list and "set up" the same
three packages, or with -s (and its long forms) print the Inst/Conf lines of a simulation; apt list
--upgradable lists them. ``dpkg -l`` and ``--print-architecture`` answer as on amd64; needrestart -b
reports the running kernel is the expected one (KSTA 1: nothing to restart). Other calls (install,
apt-mark, dpkg --configure) print nothing and succeed.
"""

from __future__ import annotations

from .core import Call, options_and_words, out


def apt(call: Call) -> int:
    """Answer apt-get / apt: update, upgrade (and its -s simulation), list --upgradable."""
    options, words = options_and_words(call.args, ("-o", "-c", "-t", "--option", "--config-file", "--target-release"))
    action = words[0] if words else ""
    simulate = any(
        option in ("--simulate", "--dry-run", "--just-print", "--no-act", "--recon")
        or (not option.startswith("--") and "s" in option[1:])
        for option in options
    )
    upgrades = (
        ("curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u8", "Debian-Security:12/stable-security"),
        ("libcurl4", "7.88.1-10+deb12u5", "7.88.1-10+deb12u8", "Debian-Security:12/stable-security"),
        ("openssl", "3.0.11-1~deb12u2", "3.0.15-1~deb12u1", "Debian:12.8/stable"),
    )
    if action == "update":
        out(
            "Hit:1 http://deb.debian.org/debian bookworm InRelease\nHit:2 http://deb.debian.org/debian-security bookworm-security InRelease\nReading package lists...\n"
        )
    elif action in ("upgrade", "dist-upgrade", "full-upgrade"):
        out(
            "Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n"
        )
        out("The following packages will be upgraded:\n  " + " ".join(name for name, *_ in upgrades) + "\n")
        out(f"{len(upgrades)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
        for name, old, new, origin in upgrades:
            out(f"Inst {name} [{old}] ({new} {origin} [amd64])\n" if simulate else f"Setting up {name} ({new}) ...\n")
        if simulate:
            out("".join(f"Conf {name} ({new} {origin} [amd64])\n" for name, _, new, origin in upgrades))
    elif action == "list" and "--upgradable" in options:
        out(
            "Listing...\n"
            + "".join(f"{n}/stable {new} amd64 [upgradable from: {old}]\n" for n, old, new, _ in upgrades)
        )
    return 0


def dpkg(call: Call) -> int:
    """Answer dpkg: -l / --list and --print-architecture."""
    if "-l" in call.args or "--list" in call.args:
        out("Desired=Unknown/Install/Remove/Purge/Hold\n||/ Name Version Architecture Description\n")
        out("ii  openssl 3.0.11-1~deb12u2 amd64 Secure Sockets Layer toolkit\n")
    elif "--print-architecture" in call.args:
        out("amd64\n")
    return 0


def needrestart(call: Call) -> int:
    """Answer needrestart: -b prints the batch report (no kernel or service restart needed)."""
    if "-b" in call.args:
        out(
            "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-28-amd64\nNEEDRESTART-KEXP: 6.1.0-28-amd64\nNEEDRESTART-KSTA: 1\n"
        )
    return 0
