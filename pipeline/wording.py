"""How messages name things: a few of many, the videos a stage scored or trained on."""

from __future__ import annotations

from typing import Any, Sequence


def first_few(items: Sequence[str], shown: int, sep: str = ", ") -> str:
    """The first ``shown`` of ``items`` joined by ``sep``, and how many are left out
    (``a, b, c and 12 more``)."""
    listed = sep.join(items[:shown])
    return listed + (f" and {len(items) - shown} more" if len(items) > shown else "")


def message_line(text: str) -> str:
    """The first line of a message (an error's, which a library may run over many), "" for none."""
    return (text.strip().splitlines() or [""])[0]


def last_validated(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last epoch of a training run's log that holds a validation (``val_map``), if any."""
    return next((entry for entry in reversed(history) if "val_map" in entry), None)


# Why a video of a split is not scored or trained on (``left_out`` of a report).
LEFT_OUT_REASONS = {"failed": "failed in the features stage", "pending": "not computed yet, the cache unfinished"}


def videos_said(report: dict[str, Any]) -> str:
    """The videos an evaluation or ablations report scored, or a sampler run's ``metrics.json``
    trained on: "4,520 of 4,926 val videos (406 left out: 406 failed in the features stage)"
    where some of the split's were not, else "120 val videos" (reports made before the split was
    named: "120 videos")."""
    what = " ".join([*([report["split"]] if "split" in report else []), "videos"])
    left = {why: n for why, n in report.get("left_out", {}).items() if n}
    if not left:
        return f"{report['videos']:,} {what}"
    reasons = ", ".join(f"{n:,} {LEFT_OUT_REASONS[why]}" for why, n in left.items())
    return f"{report['videos']:,} of {report['videos'] + sum(left.values()):,} {what} ({sum(left.values()):,} left out: {reasons})"


def counted(n: int, thing: str) -> str:
    """``n`` things, the noun plural but for one: ``1 epoch``, ``3 epochs``."""
    return f"{n} {thing}{'' if n == 1 else 's'}"
