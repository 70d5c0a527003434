"""Values shared by every domain's ``info`` dicts."""

from __future__ import annotations

import numpy as np


class NanEqualFloat(np.float64):
    """A float64 whose NaN equals NaN: "not applicable yet" in info (e.g. time to goal before the goal).

    Gymnasium's ``check_env`` compares two same-seed infos with ``==`` and IEEE NaN never equals itself; the
    evaluator ignores NaN. As a float64 subclass it batches into plain float64 arrays in vector envs.
    """

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        if np.float64.__eq__(self, other):
            return True
        return bool(np.isnan(self)) and isinstance(other, (float, np.floating)) and bool(np.isnan(other))

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    __hash__ = np.float64.__hash__


NOT_APPLICABLE = NanEqualFloat("nan")
