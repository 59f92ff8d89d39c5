"""One real Kafka broker per test session, and per-test topics and groups.

The broker is the local one ``weir kafka up`` manages (started here if it is
not running, and stopped at the end if this session started it), or the
cluster named by WEIR_KAFKA_BOOTSTRAP. Nothing about Kafka is mocked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from weir.kafka import local
from weir.kafka.admin import create_topics, delete_topics
from weir.settings import Settings


@pytest.fixture(scope="session")
def broker() -> Iterator[Settings]:
    """Settings pointing at a running broker for the whole session."""
    settings = Settings()
    state = local.up(settings)
    yield settings
    if state.started_here:
        local.down(settings)


@pytest.fixture
def kafka(broker: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings with this test's own topic prefix and app id, its contract topics created (and deleted after)."""
    tag = f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"
    settings = broker.with_overrides(topic_prefix=f"t-{tag}.", app_id=f"t-{tag}", web_port=0,
                                     resend_key=SecretStr(f"resend-{tag}"))
    create_topics(settings)
    yield settings
    delete_topics(settings)
