"""Thin Celery doors into the console's services."""

from celery import shared_task

from console import joiners


@shared_task(name="console.tasks.joins_run", ignore_result=True)
def joins_run() -> None:
    """Run by beat (and right after a person is created): every join that is due."""
    joiners.joins_run()
