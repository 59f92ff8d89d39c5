"""How a feature map encodes an event's attributes (feature set ``fs1``), and back.

Numbers pass through as floats, booleans become 0/1 and categories are one-hot
encoded as ``name=value``; a missing (null) attribute is simply absent, which
river's linear models read as zero. The version string travels with every
vector, so a prediction can always be traced to the code that built its input.
"""

from __future__ import annotations

from typing import Any

from weir.contract.serde import Record

FEATURE_SET_VERSION = "fs1"


def compute_features(event: Record) -> dict[str, float]:
    features: dict[str, float] = {}
    for name, value in event["attributes"].items():
        if value is None:
            continue
        if isinstance(value, bool):
            features[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            features[name] = float(value)
        else:
            features[f"{name}={value}"] = 1.0
    return features


def variables(features: dict[str, float]) -> dict[str, Any]:
    """A feature vector back in the event's terms: numbers stay, one-hot ``name=value`` keys become ``name``."""
    out: dict[str, Any] = {}
    for key, value in features.items():
        name, sep, category = key.partition("=")
        out[name] = category if sep else value
    return out
