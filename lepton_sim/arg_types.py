"""argparse ``type=`` converters shared by the CLI's subcommands (a bad value is a usage error: exit 2)."""

from __future__ import annotations

import argparse
import math


def positive_number(text: str) -> float:
    """A finite number > 0 (rates, learning rates, fractions before their upper bound is checked)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value
