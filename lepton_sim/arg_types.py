"""argparse ``type=`` converters shared by the CLI's subcommands (a bad value is a usage error: exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def _whole_number(text: str) -> int | None:
    """``1000``, ``1_000`` or ``2e6`` (step counts are often written so); None for anything else."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high]; anything else is a usage error naming the range."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        value = _whole_number(text)
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {allowed}, got {text!r}")
        return value

    return parse


def number_above(low: float, inclusive: bool = False, what: str = "a number") -> Callable[[str], float]:
    """A finite number > ``low`` (>= with ``inclusive``); ``what`` names it in the message ("a number of
    seconds")."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            raise argparse.ArgumentTypeError(f"must be {what} {relation} {low:g}, got {text!r}")
        return value

    return parse


positive_number = number_above(0)  # rates, learning rates, fractions before their upper bound is checked
