"""Helpers for testing code built on connscale: a fake clock to tick instead of sleeping."""

from __future__ import annotations

from connscale.clock import FakeClock

__all__ = ["FakeClock"]
