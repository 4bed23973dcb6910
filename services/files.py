"""Files for their owner only: the data folder holds the business database, Prefect's database
(with its block encryption key), mail with customers' live portal links, documents and logs.

Every dealflow process makes what it writes readable by its owner alone: ``owner_only`` sets the
process's umask to 077 (also inherited by the servers and workers ``dealflow up`` starts), and
``tighten`` takes away what others could read or write in a folder made before this was so."""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077


def owner_only() -> None:
    """From now on, files and folders this process makes are its owner's alone."""
    os.umask(OWNER_ONLY_UMASK)


def tighten(folder: Path) -> int:
    """Take group and other permissions off everything under ``folder`` (itself included, links
    not followed); how many files and folders were changed."""
    changed = 0
    if not folder.exists():
        return 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for path in ([Path(root)] if root == str(folder) else []) + [Path(root) / n for n in dirs + files]:
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            try:
                os.chmod(path, stat.S_IMODE(mode) & ~0o077)
                changed += 1
            except OSError:
                pass
    return changed
