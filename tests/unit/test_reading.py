"""How the readers of the broker's own state tell "not yet" from a failure."""

from __future__ import annotations

from confluent_kafka import KafkaError

from weir.kafka.reading import coordinator_not_ready


def test_a_coordinator_still_loading_reads_as_no_members_yet_not_as_a_failure() -> None:
    # A broker that just started answers a group description so for seconds: the demo and the soak poll for members.
    assert coordinator_not_ready(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS))
    assert coordinator_not_ready(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE))
    assert not coordinator_not_ready(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    assert not coordinator_not_ready(KafkaError(KafkaError._TRANSPORT))
