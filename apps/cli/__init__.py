"""The ``weir`` command: one entry point for every process and chore.

Global options (``--bootstrap``, ``--prefix``...) override the ``WEIR_*``
environment; every subcommand explains itself with ``--help``. A ``WeirError``
ends the command with its one-line message and its exit code (1; 2 for a
``UsageError``, refused before anything started), not a traceback.
Each command group lives in its own module and calls the layer below it.
"""

from __future__ import annotations

import click

from apps.cli.alerts import alerts
from apps.cli.common import Session, WeirGroup
from apps.cli.contract import schemas, topics
from apps.cli.data import data, monitor, replay
from apps.cli.demo import demo
from apps.cli.dlq import dlq
from apps.cli.experiment import experiment
from apps.cli.kafka import kafka
from apps.cli.models import deploy, models
from apps.cli.policy import policy
from apps.cli.processes import produce, serve_http, worker
from apps.cli.report import report
from weir.settings import Settings


@click.group(cls=WeirGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--bootstrap", help="Bootstrap servers of an existing cluster (env WEIR_KAFKA_BOOTSTRAP); "
              "without it Weir uses the local broker it manages.")
@click.option("--prefix", "topic_prefix", help="Prefix of every topic name (env WEIR_TOPIC_PREFIX).")
@click.option("--app-id", help="faust app id, the root of consumer group ids (env WEIR_APP_ID).")
@click.option("--partitions", type=int, help="Partitions of the topics Weir creates (env WEIR_PARTITIONS).")
@click.option("--debug", is_flag=True, help="On an error, show the whole traceback, not one line.")
@click.pass_context
def cli(ctx: click.Context, bootstrap: str | None, topic_prefix: str | None, app_id: str | None,
        partitions: int | None, debug: bool) -> None:
    """Weir: the whole machine-learning loop on live Kafka data.

    Producers publish events; stream stages validate them, compute features,
    score them with every active model version, learn from delayed labels and
    watch for drift; alerts go to on-call. Settings come from WEIR_* environment
    variables; the options here override them.
    """
    ctx.obj = Session(Settings().with_overrides(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix, app_id=app_id,
                                                partitions=partitions), debug=debug)


for command in (kafka, topics, schemas, worker, serve_http, produce, models, deploy, policy, replay, data, experiment,
                monitor, dlq, alerts, report, demo):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="weir")
