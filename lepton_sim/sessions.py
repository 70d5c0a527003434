"""Per-client episode state for a served policy: a recurrent or frame-stacking policy carries its state through
``Policy.act``, and a server talking to many clients keeps one state per client session between requests.

A session holds the state the policy returned for it and its batch size; the least recently used sessions are
dropped past ``max_sessions`` (a client whose session was dropped starts a new episode). Stateless policies
(today's SB3 models) keep ``None`` states, so the same plumbing costs them nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_sim.errors import LeptonError


class SessionMismatch(LeptonError):
    """A request whose batch size does not match its session's state (answered with 422)."""


@dataclass
class _Session:
    state: Any
    rows: int


class Sessions:
    """Session id -> the policy's state for it, least recently used first."""

    def __init__(self, max_sessions: int = 1024) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def begin(self, session: str | None, rows: int, episode_start: np.ndarray | None) -> tuple[Any, np.ndarray]:
        """The state and episode-start flags to act with. Without a session every request is the first step
        of an episode (no state is kept); a new session starts its episodes; a known session continues them
        unless ``episode_start`` says otherwise. A known session's batch size may change only when every row
        starts a new episode."""
        known = self._sessions.get(session) if session is not None else None
        if known is None:
            starts = np.ones(rows, bool) if episode_start is None else episode_start
            return None, starts
        starts = np.zeros(rows, bool) if episode_start is None else episode_start
        if known.rows != rows:
            if not starts.all():
                raise SessionMismatch(
                    f"session {session!r} holds state for {known.rows} observation(s) but this request has {rows}; "
                    "send episode_start: true to start its episodes over"
                )
            return None, starts
        return known.state, starts

    def end(self, session: str | None, state: Any, rows: int) -> None:
        """Keep the state the policy returned for ``session``."""
        if session is None:
            return
        self._sessions[session] = _Session(state, rows)
        self._sessions.move_to_end(session)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def drop(self, session: str) -> bool:
        """Forget a session; whether it was known."""
        return self._sessions.pop(session, None) is not None
