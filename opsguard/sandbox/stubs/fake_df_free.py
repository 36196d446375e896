"""df and free: the disks and memory of a healthy 8 GiB VPS, in the formats coreutils and procps print.

df knows two filesystems: / (every path, as the host sees it: <root>/var is /var) and /boot
(<root>/boot), both 40 % used; it honours -h/-H, -k/-m/-B, -P, -T and --output, and fails for a
path that does not exist. free prints the fixed MEMORY in bytes, KiB, MiB, GiB or -h units, with -t.
"""

from __future__ import annotations

import os

from .core import Call, err, out

# df: mount -> (device, type, size KiB, used KiB); both 40 % used, /boot has 528 MiB free.
FILESYSTEMS = {"/": ("/dev/vda1", "ext4", 83886080, 33554432), "/boot": ("/dev/vda16", "ext4", 901120, 360448)}
# free: MiB (total, used, free, shared, buff/cache, available); 8 GiB RAM + 4 GiB swap.
MEMORY = {"Mem:": (8192, 2210, 3120, 61, 2862, 5600), "Swap:": (4096, 0, 4096)}


def block_size(text: str) -> int:
    """Given a df block size (1K, 1M, 4096, ...), return it in bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    text = text.upper().rstrip("B").rstrip("I") or "1"
    if text[-1] in units:
        return int(text[:-1] or "1") * units[text[-1]]
    return int(text)


def human(size_bytes: float, base: int = 1024) -> str:
    """Given a size in bytes, return it as -h prints it (one decimal below 10: 9.5G, 80G)."""
    value = float(size_bytes)
    for unit in ("", "K", "M", "G", "T"):
        if value < base or unit == "T":
            return f"{value:.1f}{unit}" if unit and value < 10 else f"{value:.0f}{unit}"
        value /= base
    return str(size_bytes)


def df(call: Call) -> int:
    """Answer df: the filesystems of the paths given (all when none), in the layout the options ask for."""
    size_unit, human_base, posix, fields, paths = 1024, 0, False, None, []
    show_type = False
    index = 0
    while index < len(call.args):
        arg = call.args[index]
        if arg.startswith("--output"):
            every = "source,fstype,itotal,iused,iavail,ipcent,size,used,avail,pcent,file,target"
            fields = (arg.split("=", 1)[1] if "=" in arg else every).split(",")
        elif arg.startswith("--block-size="):
            size_unit = block_size(arg.split("=", 1)[1])
        elif arg == "-B" and index + 1 < len(call.args):
            index += 1
            size_unit = block_size(call.args[index])
        elif arg.startswith("-B"):
            size_unit = block_size(arg[2:])
        elif arg in ("--human-readable", "--si", "--portability", "--print-type"):
            human_base = {"--human-readable": 1024, "--si": 1000}.get(arg, human_base)
            posix = posix or arg == "--portability"
            show_type = show_type or arg == "--print-type"
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            for flag in arg[1:]:
                human_base = {"h": 1024, "H": 1000}.get(flag, human_base)
                size_unit = {"k": 1024, "m": 1024**2}.get(flag, size_unit)
                posix = posix or flag == "P"
                show_type = show_type or flag == "T"
        elif not arg.startswith("-"):
            paths.append(arg)
        index += 1
    chosen_fields = fields is not None
    if fields is None:
        fields = ["source", *(["fstype"] if show_type else []), "size", "used", "avail", "pcent", "target"]
    # A path inside the sandbox root is measured as the host sees it (<root>/boot is on /boot).
    missing = [path for path in paths if not os.path.exists(path)]
    for path in missing:
        err(f"df: {path}: No such file or directory\n")
    mounts = [(mount_of(call.host_path(path)), path) for path in paths if path not in missing]
    if not paths:
        mounts = [(mount, mount) for mount in FILESYSTEMS]
    elif not mounts:
        return 1
    if human_base:
        size_header = "Size"
    elif posix and size_unit == 1024:
        size_header = "1024-blocks"
    else:
        size_header = {1: "1B", 1024: "1K", 1024**2: "1M", 1024**3: "1G"}.get(size_unit, str(size_unit)) + "-blocks"
    headers = {
        "source": "Filesystem", "fstype": "Type", "size": size_header, "used": "Used",
        "avail": "Avail" if human_base or chosen_fields else "Available", "pcent": "Capacity" if posix else "Use%",
        "target": "Mounted on", "file": "File", "itotal": "Inodes", "iused": "IUsed", "iavail": "IFree", "ipcent": "IUse%",
    }  # fmt: skip
    rows = [[headers.get(field, field) for field in fields]]
    for mount, path in mounts:
        device, fstype, size_kib, used_kib = FILESYSTEMS[mount]
        amounts = {"size": size_kib * 1024, "used": used_kib * 1024, "avail": (size_kib - used_kib) * 1024}

        def show(amount: int) -> str:
            return human(amount, human_base) if human_base else str(-(-amount // size_unit))

        values = {
            "source": device, "fstype": fstype, "pcent": f"{-(-used_kib * 100 // size_kib)}%", "target": mount,
            "file": path, "itotal": "5242880", "iused": "524288", "iavail": "4718592", "ipcent": "10%",
            **{key: show(amount) for key, amount in amounts.items()},
        }  # fmt: skip
        rows.append([values.get(field, "-") for field in fields])
    widths = [max(len(row[column]) for row in rows) for column in range(len(fields))]
    left = {"source", "fstype", "target", "file"}  # like df: names left-aligned, numbers right-aligned
    for row in rows:
        cells = [
            cell.ljust(width) if field in left else cell.rjust(width)
            for cell, width, field in zip(row, widths, fields, strict=True)
        ]
        out(" ".join(cells).rstrip() + "\n")
    return 1 if missing else 0


def mount_of(path: str) -> str:
    """Given a host path, return the mount point of FILESYSTEMS it lies on."""
    return "/boot" if path == "/boot" or path.startswith("/boot/") else "/"


def free(call: Call) -> int:
    """Answer free: memory and swap in the unit the options ask for."""
    unit, human_readable, total_line = 1024, False, False
    for arg in call.args:
        flags = {"--bytes": "b", "--kibi": "k", "--mebi": "m", "--gibi": "g", "--human": "h", "--total": "t"}
        for flag in (
            [flags[arg]] if arg in flags else (arg[1:] if arg.startswith("-") and not arg.startswith("--") else "")
        ):
            unit = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}.get(flag, unit)
            human_readable = human_readable or flag == "h"
            total_line = total_line or flag == "t"

    def show(mebibytes: int) -> str:
        amount = mebibytes * 1024**2
        return (
            human(amount).replace("K", "Ki").replace("M", "Mi").replace("G", "Gi")
            if human_readable
            else str(amount // unit)
        )

    out(
        " " * 7
        + "".join(f"{title:>12}" for title in ("total", "used", "free", "shared", "buff/cache", "available"))
        + "\n"
    )
    for label, values in MEMORY.items():
        out(f"{label:<7}" + "".join(f"{show(value):>12}" for value in values) + "\n")
    if total_line:
        totals = [MEMORY["Mem:"][i] + MEMORY["Swap:"][i] for i in range(3)]
        out(f"{'Total:':<7}" + "".join(f"{show(value):>12}" for value in totals) + "\n")
    return 0
