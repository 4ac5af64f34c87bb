"""pytest plugin (registered by entry point): memory-per-unit gates for users' tests."""

from __future__ import annotations
