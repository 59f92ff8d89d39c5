"""The join's filter of stored ids: never wrong about an id it was given, rarely "maybe" about one it was not."""

from __future__ import annotations

from weir.state.seen import SeenIds


def test_every_added_id_is_maybe_and_few_others_are() -> None:
    seen = SeenIds(f"stored-{i}" for i in range(200_000))
    assert all(f"stored-{i}" in seen for i in range(200_000))
    false_maybes = sum(f"other-{i}" in seen for i in range(100_000))
    assert false_maybes < 200  # under 0.2% at 200,000 ids


def test_an_empty_filter_knows_nothing_was_stored() -> None:
    assert "anything" not in SeenIds()
