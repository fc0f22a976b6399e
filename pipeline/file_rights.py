"""What this process may write and read of a group's shared cache folder, and whose what it may
not is. An unfinished output one member began (a sampler run a preempted job left, a feature
cache half computed) is made of files their umask made theirs alone: found before another
member's work, not at its first write after an hour's compute (:func:`first_unwritable`), and
warned of as it is begun (:func:`warn_if_kept_from_the_group`); an output a member keeps to
themselves is said as such (:func:`can_read`, :func:`owner_said`)."""

from __future__ import annotations

import functools
import grp
import os
import pwd
import secrets
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

# Files opened to lock, which a process that cannot write them opens for reading
# (pipeline.cache._opened_to_lock): not in the way of going on.
LOCK_SUFFIX = ".lock"


def can_write_in(folder: Path) -> bool:
    """Whether this process can make a file in ``folder``, found by making one (hidden, removed at
    once): ``access(2)`` answers by the process's own rights, yes for root where an NFS server
    maps root to nobody (``root_squash``, met by a container's root on a cluster's mount)."""
    probe = folder / f".nsnet-write-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return False
    probe.unlink()
    return True


def _can_write(path: Path, found: os.stat_result) -> bool:
    """Whether this process can write the file or folder ``path`` (``found``, its ``lstat``):
    root by trying (:func:`can_write_in`, or the file opened to append without writing), as
    ``access(2)`` says yes to root wherever an NFS server maps it to nobody; another user by its
    user bit where the path is theirs, else by ``access(2)``, which counts groups and ACLs."""
    if os.geteuid() == 0:
        if stat.S_ISDIR(found.st_mode):
            return can_write_in(path)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # not made where it went meanwhile
        except OSError:
            return False
        return True
    if found.st_uid == os.geteuid():
        return bool(found.st_mode & stat.S_IWUSR)
    return os.access(path, os.W_OK | (os.X_OK if stat.S_ISDIR(found.st_mode) else 0))


def _unwritable_in(output: Path, deep: bool) -> Iterator[Path]:
    """``output`` and, where it is a folder and ``deep``, everything in it that this process
    cannot write, a folder it cannot list among them; links and lock files left out (a link is
    not written through; see :data:`LOCK_SUFFIX`)."""
    try:
        found = output.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(found.st_mode):
        return
    if not _can_write(output, found) and os.path.lexists(output):  # not one a writer renamed meanwhile (a temporary file)
        yield output
    if deep and stat.S_ISDIR(found.st_mode):
        try:
            entries = [Path(entry.path) for entry in os.scandir(output) if not entry.name.endswith(LOCK_SUFFIX)]
        except PermissionError:
            yield output
            return
        for entry in entries:
            yield from _unwritable_in(entry, deep)


def first_unwritable(outputs: Iterable[Path], deep: bool = True) -> Path | None:
    """The first file or folder of ``outputs`` (each a file or a folder with all it holds, or
    the folder alone where not ``deep``; those not there left out) that this process cannot
    write, else None."""
    return next((path for output in outputs for path in _unwritable_in(output, deep)), None)


def can_read(path: Path) -> bool:
    """Whether this process can read the file ``path``, or list and enter the folder: root by
    trying (see :func:`_can_write`), another user by ``access(2)``."""
    if os.geteuid() != 0:
        return os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0))
    try:
        if path.is_dir():
            with os.scandir(path):
                return True
        with open(path, "rb"):
            return True
    except OSError:
        return False


def owner_said(path: Path) -> str:
    """Whose ``path`` is and its mode, as a user reads them: ``alice's, mode 644``; ``uid 1234``
    where this machine does not know the user (a container without the cluster's users)."""
    found = path.lstat()
    if found.st_uid == os.geteuid():
        return f"this user's own, mode {stat.S_IMODE(found.st_mode):o}"
    try:
        name = pwd.getpwuid(found.st_uid).pw_name
    except KeyError:
        name = f"uid {found.st_uid}"
    return f"{name}'s, mode {stat.S_IMODE(found.st_mode):o}"


def refusal_said(refused: Path) -> str:
    """Whose a file a file system refused to this process is (:func:`owner_said`), or its
    folder's where the file itself cannot be looked at or is not there (one to be made): ``its
    folder alice's, mode 2700``; "" where neither can (a bare name, as ``shutil.rmtree`` gives
    within a folder, is not the current folder's)."""
    named = ((refused, ""), (refused.parent, "its folder ")) if refused.parent != Path(".") else ((refused, ""),)
    for path, what in named:
        try:
            return what + owner_said(path)
        except OSError:
            continue
    return ""


def not_writable_said(entry: Path, outputs: Iterable[Path]) -> str:
    """The error of going on with ``outputs``, unfinished, of which ``entry`` cannot be written
    here: whose it is and what its owner, or this user, can do."""
    outputs = list(outputs)
    within = next(output for output in outputs if output == entry or output in entry.parents)
    lead = f"unfinished, {owner_said(entry)}" if entry == within else f"{owner_said(entry)}, in {within}, unfinished"
    return (f"{entry}: {lead}, which this process cannot write and this command goes on with; run it as the owner, "
            f"or again once the owner has run `chmod -R g+w {' '.join(map(str, outputs))}` "
            "(a group sharing a cache folder runs every command with `umask 002`); stopped before computing anything")


def _umask() -> int:
    """This process's umask, read where Linux says it (``/proc/self/status``), else set and set
    back."""
    try:
        return int(Path("/proc/self/status").read_text().split("Umask:")[1].split()[0], 8)
    except (OSError, IndexError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


@functools.cache
def warn_if_kept_from_the_group(folder: Path) -> None:
    """Where ``folder`` is one its group writes (a group's shared cache folder) and this
    process's umask takes group write from what it makes there, a warning that another member
    cannot go on with an output it begins there if it stops (a preempted job), and what to do;
    once a folder a process."""
    try:
        found = folder.stat()
    except OSError:
        return
    mask = _umask()
    if not found.st_mode & stat.S_IWGRP or not mask & stat.S_IWGRP:
        return
    try:
        group = grp.getgrgid(found.st_gid).gr_name
    except KeyError:
        group = f"gid {found.st_gid}"
    warnings.warn(f"{folder}: a folder its group writes (group {group}, mode {stat.S_IMODE(found.st_mode):o}), where this process's umask, {mask:03o}, "
                  "keeps what it begins from the other members: none of them can go on with it if this command stops; `umask 002` before it lets them", RuntimeWarning, stacklevel=2)
