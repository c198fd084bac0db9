"""The result table: one row per figure, with the date and the machine it was measured on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

HEADER = ("figure", "ours", "baseline", "ratio", "target", "met?")


@dataclass(frozen=True)
class Figure:
    """One measured figure; `ours` and `baseline` carry the absolute numbers."""

    name: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs, {memory:.1f} GiB RAM, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}"
    )


def render(figures: list[Figure], mode: str) -> str:
    """A Markdown table, preceded by the date, the machine and the mode."""
    rows = [HEADER, *((f.name, f.ours, f.baseline, f.ratio, f.target, _met(f)) for f in figures)]
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}",
        f"mode: {mode}",
        "",
        *("| " + " | ".join(row) + " |" for row in rows[:1]),
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
    ]
    return "\n".join(lines)


def _met(figure: Figure) -> str:
    return "yes" if figure.met else "**no**"


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"


def added_seconds(value: float) -> str:
    """A difference of times, signed: +0.35 s, -12.0 ms."""
    return ("+" if value >= 0 else "-") + seconds(abs(value))


def megabytes(value: float) -> str:
    return f"{value:.0f} MB"
