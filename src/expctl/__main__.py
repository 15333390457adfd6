"""`python -m expctl` runs the command line."""

from __future__ import annotations

from expctl.cli import main

main()
