"""connscale: small, flat, measured memory per connection for long-lived-connection servers.

The public surface is what ``__all__`` lists; a test keeps it exact. Layers (each imports
only from the ones before it) are drawn in ``docs/ARCHITECTURE.md``.
"""

# The import block is split into one section per area, each kept sorted by hand;
# ruff would merge them into one block across the section markers.
# ruff: noqa: I001

from __future__ import annotations

from connscale._version import __version__
from connscale.clock import FakeClock
from connscale.errors import (
    AppLoadError,
    BatchTooLargeError,
    CacheError,
    ClientCapabilityError,
    ClientError,
    ClientRequestError,
    ClientResponseError,
    ClientUnreachableError,
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
from connscale.core.cache import CacheStatistics, EvictionReason, TTLCache, create_ttl_dict
from connscale.core.codec import decode_session, encode_session
from connscale.core.pool import BufferPool, BufferPoolStatistics, ObjectPool, PoolStatistics
from connscale.core.session import (
    Capabilities,
    Phase,
    Session,
    SessionTable,
    Transport,
    intern_capabilities,
)
from connscale.core.sizeof import estimate_memory, size_breakdown

# --- end building blocks -------------------------------------------------------------------

# --- instruments -----------------------------------------------------------------------------
from connscale.core.monitor_policy import (
    AdaptiveSampling,
    PressureLevel,
    PressureThresholds,
    PressureTracker,
)
from connscale.core.stats import ScalingResult, TrendResult, Verdict, scaling, trend
from connscale.gc import GCStatistics, GCTuner, PauseRecorder
from connscale.memory import (
    GroupSample,
    KernelSockets,
    MemoryReader,
    MemorySample,
    ProcessSockets,
    kernel_sockets,
    process_sockets,
    sample_group,
)
from connscale.monitor import History, Monitor
from connscale.profile import Profiler, ProfileRecord, Snapshot
from connscale.prometheus import MetricsExporter
from connscale.report.render import write_report

# --- end instruments -------------------------------------------------------------------------

# --- app -----------------------------------------------------------------------------------------
from connscale.app import (
    Annotations,
    App,
    AssistantMessage,
    Audio,
    Completion,
    CompletionArgument,
    Content,
    Context,
    ElicitResult,
    EmbeddedResource,
    Icon,
    Image,
    Message,
    PromptRef,
    ResourceLink,
    ResourceTemplateRef,
    Root,
    SampleResult,
    Text,
    ToolAnnotations,
    ToolResult,
    UriTemplate,
    UserMessage,
    titled,
)

# --- end app -------------------------------------------------------------------------------------

# --- server ------------------------------------------------------------------------------------
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.server.config import ServerConfig
from connscale.server.experts import (
    CircleOfExperts,
    CircleStatistics,
    Consultation,
    Expert,
    ExpertAnswer,
    ExpertQuery,
    ExpertResponse,
    FunctionExpert,
    ResponseCollector,
    builtin_experts,
    load_experts,
)
from connscale.server.reference import build_reference_app
from connscale.server.supervisor import serve

# --- end server --------------------------------------------------------------------------------

# --- load and bench ----------------------------------------------------------------------------
from connscale.bench.orchestrator import BenchConfig, ServerSpec, run_bench
from connscale.loadgen.swarm import Swarm
from connscale.loadgen.traffic import TrafficResult
from connscale.loadgen.plan import Limits, LoadPlan, plan_load, read_limits
from connscale.loadgen.runner import LoadRunner

# --- end load and bench ------------------------------------------------------------------------

__all__ = [
    "AppLoadError",
    "BatchTooLargeError",
    "CacheError",
    "ClientCapabilityError",
    "ClientError",
    "ClientRequestError",
    "ClientResponseError",
    "ClientUnreachableError",
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
    "BufferPool",
    "BufferPoolStatistics",
    "CacheStatistics",
    "EvictionReason",
    "ObjectPool",
    "PoolStatistics",
    "TTLCache",
    "create_ttl_dict",
    "Capabilities",
    "Phase",
    "Session",
    "SessionTable",
    "Transport",
    "intern_capabilities",
    "decode_session",
    "encode_session",
    "estimate_memory",
    "size_breakdown",
    # instruments
    "AdaptiveSampling",
    "GCStatistics",
    "GCTuner",
    "GroupSample",
    "History",
    "KernelSockets",
    "MemoryReader",
    "MemorySample",
    "MetricsExporter",
    "Monitor",
    "PauseRecorder",
    "PressureLevel",
    "PressureThresholds",
    "PressureTracker",
    "ProcessSockets",
    "ProfileRecord",
    "Profiler",
    "ScalingResult",
    "Snapshot",
    "TrendResult",
    "Verdict",
    "kernel_sockets",
    "process_sockets",
    "sample_group",
    "scaling",
    "trend",
    "write_report",
    # app
    "Annotations",
    "App",
    "AssistantMessage",
    "Audio",
    "Completion",
    "CompletionArgument",
    "Content",
    "Context",
    "ElicitResult",
    "EmbeddedResource",
    "Icon",
    "Image",
    "Message",
    "PromptRef",
    "ResourceLink",
    "ResourceTemplateRef",
    "Root",
    "SampleResult",
    "Text",
    "ToolAnnotations",
    "ToolResult",
    "UriTemplate",
    "UserMessage",
    "titled",
    # server
    "CircleOfExperts",
    "CircleStatistics",
    "Consultation",
    "Expert",
    "ExpertAnswer",
    "ExpertQuery",
    "ExpertResponse",
    "FunctionExpert",
    "ResponseCollector",
    "builtin_experts",
    "load_experts",
    "AsyncioEngine",
    "EpollEngine",
    "McpProtocol",
    "ServerConfig",
    "ServerLimits",
    "build_reference_app",
    "serve",
    # load and bench
    "BenchConfig",
    "Limits",
    "LoadPlan",
    "LoadRunner",
    "ServerSpec",
    "Swarm",
    "TrafficResult",
    "plan_load",
    "read_limits",
    "run_bench",
]
