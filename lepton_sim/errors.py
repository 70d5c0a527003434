"""User-facing errors: the CLI prints these as one clear message, without a traceback."""

from __future__ import annotations


class LeptonError(Exception):
    """Something the user can fix (a scenario field, a path, a name); the message says what and where."""


class ScenarioError(LeptonError, ValueError):
    """A scenario or suite file (or an override) is invalid."""
