"""unzip (Info-ZIP 6.00): unpacks real zip archives, but only inside the sandbox root.

-l lists the members, -t tests the archive, -d DIR (or -dDIR) chooses where to unpack, -q keeps
it quiet; ARCHIVE may be given without its .zip. A member with an absolute or parent path is
skipped with a warning, so nothing is written outside the target directory.
"""

from __future__ import annotations

import os

from .core import REFUSED_OUTSIDE, Call, err, out


def unzip(call: Call) -> int:
    """Answer unzip: list, test or unpack the archive; 9 if it cannot be opened, 10 if none is given."""
    import zipfile

    flags, archive, destination = "", None, None
    index = 0
    while index < len(call.args):
        arg = call.args[index]
        if arg == "-d" and index + 1 < len(call.args):
            index += 1
            destination = call.args[index]
        elif arg.startswith("-d") and len(arg) > 2:
            destination = arg[2:]
        elif arg.startswith("-") and archive is None:
            flags += arg[1:]
        elif archive is None:
            archive = arg
        index += 1
    if archive is None:
        err("UnZip 6.00 (sandbox stub): no archive given\n")
        return 10
    if not os.path.isfile(archive) and os.path.isfile(archive + ".zip"):
        archive += ".zip"
    try:
        bundle = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile):
        err(f"unzip:  cannot find or open {archive}, {archive}.zip or {archive}.ZIP.\n")
        return 9
    with bundle:
        if "l" in flags:
            out("".join(f"{info.file_size:>9}  {info.filename}\n" for info in bundle.infolist()))
            return 0
        if "t" in flags:
            out(f"No errors detected in compressed data of {archive}.\n")
            return 0
        target = destination or "."
        if not call.inside_root(target):
            err(f"sandbox stub: refusing to unpack into {target} outside the sandbox root {call.root}\n")
            return REFUSED_OUTSIDE
        if "q" not in flags:
            out(f"Archive:  {archive}\n")
        for info in bundle.infolist():
            if info.filename.startswith("/") or ".." in info.filename.split("/"):
                err(f"warning:  skipped {info.filename!r} (absolute or parent path)\n")
                continue
            bundle.extract(info, target)
            if "q" not in flags:
                out(f"  inflating: {os.path.join(target, info.filename)}\n")
    return 0
