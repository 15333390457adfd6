"""`expctl import` (being written)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Adds nothing yet."""
