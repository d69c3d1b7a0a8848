"""Floors and ceilings for a `rag eval` run's metrics (`--min METRIC=VALUE`, `--max METRIC=VALUE`).

A run that misses any of them fails with one EvalError that lists every miss, so a
CI job shows all of them at once. A metric the run did not measure misses its
threshold. Left out: computing the metrics (`rag.evaluation.summary`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rag.errors import EvalError
from rag.evaluation.metrics import METRIC_KEYS

_THRESHOLD = re.compile(r"^\s*([\w@.-]+)\s*=\s*(\S+)\s*$")


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """`metric=value` strings -> {metric: value}; unknown metrics or bad values are an EvalError."""
    thresholds: dict[str, float] = {}
    for item in items:
        match = _THRESHOLD.match(item)
        if not match:
            raise EvalError(f"bad threshold {item!r} — write METRIC=VALUE, e.g. answer_correct=0.6")
        name, value = match.groups()
        if name not in METRIC_KEYS:
            raise EvalError(f"unknown metric {name!r} in {item!r} — use one of: {', '.join(METRIC_KEYS)}")
        try:
            thresholds[name] = float(value)
        except ValueError as error:
            raise EvalError(f"bad value {value!r} in {item!r} — use a number, e.g. {name}=0.5") from error
    return thresholds


def check_thresholds(
    overall: Mapping[str, Any], minimums: Mapping[str, float], maximums: Mapping[str, float] | None = None
) -> None:
    """Raise one EvalError listing every metric below its floor or above its ceiling (or unmeasured)."""
    missed: list[str] = []
    for name, floor in minimums.items():
        value = overall.get(name)
        if value is None:
            missed.append(f"{name} not measured (floor {floor:g})")
        elif value < floor:
            missed.append(f"{name}={value:g} < {floor:g}")
    for name, ceiling in (maximums or {}).items():
        value = overall.get(name)
        if value is None:
            missed.append(f"{name} not measured (ceiling {ceiling:g})")
        elif value > ceiling:
            missed.append(f"{name}={value:g} > {ceiling:g}")
    if missed:
        raise EvalError(f"evaluation thresholds missed: {'; '.join(missed)} — see report.md for the failures")
