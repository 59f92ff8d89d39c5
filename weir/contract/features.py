"""How a feature map encodes an event's attributes (feature set ``fs1``), and back.

Numbers pass through as floats, booleans become 0/1 and categories are one-hot
encoded as ``name=value``; a missing (null) attribute is simply absent, which
river's linear models read as zero. The version string travels with every
vector, so a prediction can always be traced to the code that built its input.
"""

from __future__ import annotations

from collections.abc import Mapping

from weir.contract.records import AttributeValue

FEATURE_SET_VERSION = "fs1"


def compute_features(attributes: Mapping[str, AttributeValue]) -> dict[str, float]:
    """The feature map of an event's attributes."""
    features: dict[str, float] = {}
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bool):
            features[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            features[name] = float(value)
        else:
            features[f"{name}={value}"] = 1.0
    return features


def attributes_of(features: Mapping[str, float]) -> dict[str, float | str]:
    """A feature map back in the event's terms: numbers stay, one-hot ``name=value`` keys become ``name``."""
    out: dict[str, float | str] = {}
    for key, value in features.items():
        name, sep, category = key.partition("=")
        out[name] = category if sep else value
    return out
