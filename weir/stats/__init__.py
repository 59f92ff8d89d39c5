"""Drift statistics on bounded memory, and stored references (profiles) for them."""
