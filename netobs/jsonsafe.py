"""The one JSON sanitiser: numpy scalars become Python numbers, NaN and infinities become
null (missing, never 0), tuple keys become strings. `--json` output and stored facts go
through it, so `json.dumps(..., allow_nan=False)` never fails on a measured value."""
from __future__ import annotations

import math


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar (np.bool_ too)
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj
