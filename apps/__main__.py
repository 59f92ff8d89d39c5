"""``python -m apps``: the same as the ``weir`` command."""

from apps.cli import main

main()
