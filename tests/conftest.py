"""Shared pytest configuration; fixtures live in the plugin modules listed below."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures_servers"]
