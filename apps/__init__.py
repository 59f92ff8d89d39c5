"""The applications on top of every layer: the ``weir`` command, the demo, replay, and their helpers."""
