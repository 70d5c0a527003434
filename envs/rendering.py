"""The render-mode check every lepton-sim env makes in its constructor (Gymnasium's convention)."""

from __future__ import annotations

from typing import Any, Mapping


def check_render_mode(render_mode: str | None, metadata: Mapping[str, Any]) -> str | None:
    """Return ``render_mode`` if the env's ``metadata["render_modes"]`` allows it (or it is None), else raise."""
    allowed = list(metadata.get("render_modes", []))
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode {render_mode!r} is not supported; allowed: {', '.join(allowed) or 'none'}")
    return render_mode
