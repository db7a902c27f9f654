"""Admin classes of the console, one module per subject (found by Django's autodiscover)."""

from console.admin import audit, joiners, people, rooms  # noqa: F401
