"""Saved state as pickles of plain data and river objects, and nothing else.

A stage's state is written as builtin containers and numbers, strings and
bytes, plus the river models, metrics and detectors it learns with. None of
Weir's own classes is pickled, so moving or renaming one never breaks saved
state, and loading refuses every other global: a state file that names
``os.system`` (or an old file naming a class that has moved) raises
``UnreadableState`` instead of running or half-loading it.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from weir.errors import WeirError

# The globals a state may name outside river: containers and the few helpers river's own objects pickle.
_ALLOWED = {
    "builtins": frozenset({"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list",
                           "range", "set", "slice", "str", "tuple"}),
    "collections": frozenset({"Counter", "OrderedDict", "defaultdict", "deque"}),
    "functools": frozenset({"partial"}),
    "random": frozenset({"Random"}),
    "copyreg": frozenset({"_reconstructor"}),
}


class UnreadableState(WeirError):
    """A saved state that this version cannot, or must not, load."""


def _in_river(module: str) -> bool:
    return module == "river" or module.startswith("river.")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if _in_river(module) and "." not in name:
            # Only a class river itself defines: a name river merely imports (``os``, ``eval``), a dotted path
            # through one, or a river function would let a state call anything.
            found = super().find_class(module, name)
            if isinstance(found, type) and _in_river(found.__module__):
                return found
        raise UnreadableState(f"the state names {module}.{name}, which saved state may not hold")


def dumps(state: Any) -> bytes:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    """The state in ``data``; ``UnreadableState`` when it names anything but plain data and river objects."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except UnreadableState:
        raise
    except Exception as exc:  # truncated, garbage, or a river class that changed shape: all unreadable
        raise UnreadableState(f"the state does not load: {type(exc).__name__}: {exc}") from exc
