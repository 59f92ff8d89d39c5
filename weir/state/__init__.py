"""Local state of stateful stages: a SQLite store committed with snapshots, and the keyed join built on it."""
