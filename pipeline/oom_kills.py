"""How many processes the kernel's out-of-memory killer has killed on this machine: the
``oom_kill`` line of ``/proc/vmstat`` (Linux 4.13 and later; a container sees the machine's). A
decoding worker that died of SIGKILL while the count rose was killed for memory, not by its
video (:mod:`pipeline.decode_watch`); the kernel counts a kill before it sends the signal.

The machine's count rather than a cgroup's: cgroup v1's ``memory.oom_control`` counts the kills
of its own processes alone, not those of the cgroups below it (measured: a process moved into a
child cgroup and killed there at its limit raised the child's count and ``/proc/vmstat``'s, not
the parent's), so a job's count misses a worker placed lower; another job's kill at the same
moment would be taken for this one's."""

from __future__ import annotations

from pathlib import Path

VMSTAT = Path("/proc/vmstat")
COUNT_KEY = "oom_kill"


def oom_kills(vmstat: Path = VMSTAT) -> int | None:
    """The machine's count of out-of-memory kills since it started; None where it cannot be
    read (not Linux, or a kernel before 4.13)."""
    try:
        lines = vmstat.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(" ")
        if key == COUNT_KEY and value.strip().isdigit():
            return int(value)
    return None
