"""connscale: small, flat, measured memory per connection for long-lived-connection servers.

The public surface is what ``__all__`` lists; a test keeps it exact. Layers (each imports
only from the ones before it) are drawn in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from connscale._version import __version__
from connscale.clock import FakeClock
from connscale.errors import (
    BatchTooLargeError,
    CacheError,
    ConfigurationError,
    ConnscaleError,
    CorruptRunError,
    CorruptStateError,
    DoubleReleaseError,
    ForeignObjectError,
    LoadError,
    MeasurementError,
    NotAvailableError,
    PlanError,
    PoolError,
    ProcessGoneError,
    ProtocolError,
    ReportError,
    ServerError,
    SessionError,
    SlotError,
    TableFullError,
    TargetRefusedError,
    UnknownFieldError,
)

# --- building blocks (core) ----------------------------------------------------------------
# --- end building blocks -------------------------------------------------------------------

# --- instruments -----------------------------------------------------------------------------
# --- end instruments -------------------------------------------------------------------------

# --- server ------------------------------------------------------------------------------------
# --- end server --------------------------------------------------------------------------------

# --- load and bench ----------------------------------------------------------------------------
# --- end load and bench ------------------------------------------------------------------------

__all__ = [
    "BatchTooLargeError",
    "CacheError",
    "ConfigurationError",
    "ConnscaleError",
    "CorruptRunError",
    "CorruptStateError",
    "DoubleReleaseError",
    "FakeClock",
    "ForeignObjectError",
    "LoadError",
    "MeasurementError",
    "NotAvailableError",
    "PlanError",
    "PoolError",
    "ProcessGoneError",
    "ProtocolError",
    "ReportError",
    "ServerError",
    "SessionError",
    "SlotError",
    "TableFullError",
    "TargetRefusedError",
    "UnknownFieldError",
    "__version__",
    # building blocks
    # instruments
    # server
    # load and bench
]
