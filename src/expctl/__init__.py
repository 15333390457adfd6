"""expctl: model experiments as code for an AI gateway."""
from __future__ import annotations

__version__ = "0.2.0"
