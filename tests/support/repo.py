"""The repository root, for tests that read its files (docs, notebooks, scripts, benchmarks)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
