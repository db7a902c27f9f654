"""Thin Celery doors into the archiver and retention (run by beat, see CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

from records import archiver, retention

log = logging.getLogger(__name__)


# A backlog (the first run on a large store) is worked through a bounded slice per beat tick, so
# one run never holds a worker for hours; the next tick goes on from the mark.
BATCHES_PER_RUN = 200


@shared_task(name="records.tasks.archive_events", ignore_result=True)
def archive_events() -> None:
    stats = archiver.archive_run(max_batches=BATCHES_PER_RUN)
    if stats.events_archived or stats.decryptions:
        log.info(
            "archived %d event(s), %d late decryption(s), %d hole(s) open",
            stats.events_archived,
            stats.decryptions,
            stats.holes_open,
        )


@shared_task(name="records.tasks.retention_run", ignore_result=True)
def retention_run() -> None:
    # Archive first: retention never purges from the local store what is not archived yet.
    archiver.archive_run(max_batches=BATCHES_PER_RUN)
    for result in retention.retention_run():
        log.info("retention %s: %s", result.room_id, result)
