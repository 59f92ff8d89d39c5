"""``python -m weir``: the same as the ``weir`` command."""

from weir.cli import main

main()
