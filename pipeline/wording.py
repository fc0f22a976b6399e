"""How messages name a few of many things."""

from __future__ import annotations

from typing import Sequence


def first_few(items: Sequence[str], shown: int, sep: str = ", ") -> str:
    """The first ``shown`` of ``items`` joined by ``sep``, and how many are left out
    (``a, b, c and 12 more``)."""
    listed = sep.join(items[:shown])
    return listed + (f" and {len(items) - shown} more" if len(items) > shown else "")
