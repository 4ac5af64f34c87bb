"""Plan a load: how many client processes, and which loopback source addresses each uses.

Two limits stop a naive load generator long before the server gives out: a process may
hold only ``RLIMIT_NOFILE`` open files (20,000 on the machines we measure on), and one
(source address, destination address, destination port) tuple has only as many
connections as the ephemeral port range has ports (~28K). The plan reads both limits
and spreads connections over processes and over distinct source addresses in
127.0.0.0/8 (every one of them is the loopback interface on Linux), so neither binds.
"""

from __future__ import annotations

import ipaddress
import math
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connscale.errors import ConfigurationError, PlanError

#: Files a client process keeps for itself (stdio, epoll, pipes, imported modules).
DEFAULT_RESERVED_FILES = 128
#: Share of the ephemeral port range a plan uses per source address (TIME_WAIT, other users).
DEFAULT_PORT_SHARE = 0.85
#: Upper bound on client processes a plan may ask for.
DEFAULT_MAX_PROCESSES = 128
#: The first source address handed out: 127.0.0.1 is usually the server's own address.
FIRST_SOURCE = ipaddress.IPv4Address("127.0.0.2")
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@dataclass(frozen=True, slots=True)
class Limits:
    """What this machine allows one client process and one source address."""

    open_files_soft: int
    open_files_hard: int
    port_low: int
    port_high: int

    @property
    def ports(self) -> int:
        """Ephemeral ports per (source, destination, destination port) tuple."""
        return self.port_high - self.port_low + 1


@dataclass(frozen=True, slots=True)
class SourceShare:
    """``connections`` opened from one source address (None: let the kernel choose)."""

    address: str | None
    connections: int


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One client process: its connections, split over its source addresses."""

    index: int
    sources: tuple[SourceShare, ...]

    @property
    def connections(self) -> int:
        return sum(share.connections for share in self.sources)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """A whole load: worker processes and the limits the plan was made from."""

    connections: int
    workers: tuple[WorkerPlan, ...]
    limits: Limits
    per_process: int
    per_source: int

    @property
    def processes(self) -> int:
        return len(self.workers)

    @property
    def source_addresses(self) -> tuple[str, ...]:
        return tuple(
            share.address
            for worker in self.workers
            for share in worker.sources
            if share.address is not None
        )

    def describe(self) -> str:
        sources = len(self.source_addresses) or 1
        return (
            f"{self.connections} connections over {self.processes} process(es) "
            f"(<= {self.per_process} each) and {sources} source address(es) "
            f"(<= {self.per_source} each)"
        )


def parse_port_range(text: str) -> tuple[int, int]:
    """Parse ``ip_local_port_range`` ("32768\\t60999"); PlanError on anything else."""
    parts = text.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise PlanError(f"cannot read the ephemeral port range from {text!r}")
    low, high = int(parts[0]), int(parts[1])
    if not 0 < low <= high <= 65535:
        raise PlanError(f"the ephemeral port range {low}-{high} is not valid")
    return low, high


def read_limits(port_range_file: Path = PORT_RANGE_FILE) -> Limits:
    """Read RLIMIT_NOFILE and the ephemeral port range of this machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        low, high = parse_port_range(port_range_file.read_text(encoding="ascii"))
    except OSError:
        low, high = 32768, 60999  # Linux's default, where /proc cannot be read
    unlimited = resource.RLIM_INFINITY
    hard_files = 1 << 20 if hard == unlimited else int(hard)
    soft_files = hard_files if soft == unlimited else int(soft)
    return Limits(soft_files, hard_files, low, high)


def loopback_sources(first: ipaddress.IPv4Address = FIRST_SOURCE) -> Iterator[str]:
    """Source addresses in 127.0.0.0/8 from ``first`` on, skipping .0 and .255 host parts."""
    address = first
    while address in LOOPBACK:
        last_octet = int(address) & 0xFF
        if last_octet not in (0, 255):
            yield str(address)
        address += 1


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def plan_load(
    connections: int,
    *,
    limits: Limits,
    target_host: str = "127.0.0.1",
    processes: int | None = None,
    reserved_files: int = DEFAULT_RESERVED_FILES,
    port_share: float = DEFAULT_PORT_SHARE,
    max_processes: int = DEFAULT_MAX_PROCESSES,
) -> LoadPlan:
    """Spread ``connections`` over processes and source addresses within ``limits``.

    A process holds at most ``open_files_hard - reserved_files`` sockets (workers raise
    their soft limit to the hard one); a source address at most ``port_share`` of the
    ephemeral ports. ``processes`` forces a process count (it must still fit). Raises
    PlanError when the plan cannot fit, saying which limit binds and what to change.
    """
    if connections < 1:
        raise ConfigurationError(f"connections must be at least 1, not {connections}")
    if not 0 < port_share <= 1:
        raise ConfigurationError(f"port_share must be in (0, 1], not {port_share}")
    per_process = limits.open_files_hard - reserved_files
    if per_process < 1:
        raise PlanError(
            f"the open-files limit ({limits.open_files_hard}) leaves no room for sockets "
            f"after {reserved_files} reserved files; raise `ulimit -n`"
        )
    per_source = max(1, int(limits.ports * port_share))
    loopback = is_loopback(target_host)
    if not loopback and connections > per_source:
        raise PlanError(
            f"{connections} connections to the non-loopback target {target_host} need more "
            f"than the {per_source} ephemeral ports one source address has; use fewer "
            "connections or several target ports"
        )
    needed = math.ceil(connections / per_process)
    if processes is None:
        processes = needed
    elif processes < needed:
        raise PlanError(
            f"{connections} connections need at least {needed} processes at "
            f"{per_process} open files each; {processes} were asked for"
        )
    if processes > max_processes:
        raise PlanError(
            f"{connections} connections need {processes} client processes at "
            f"{per_process} sockets each, more than the {max_processes} allowed; "
            "raise the open-files limit or max_processes"
        )
    base, extra = divmod(connections, processes)
    counts = [base + (1 if index < extra else 0) for index in range(processes)]
    addresses = loopback_sources()
    workers: list[WorkerPlan] = []
    for index, count in enumerate(counts):
        shares: list[SourceShare] = []
        if not loopback:
            shares.append(SourceShare(None, count))
        else:
            # Each process gets its own addresses: no two processes compete for ports.
            left = count
            while left > 0:
                try:
                    address = next(addresses)
                except StopIteration:
                    raise PlanError(
                        f"{connections} connections need more loopback source addresses "
                        "than 127.0.0.0/8 has"
                    ) from None
                take = min(left, per_source)
                shares.append(SourceShare(address, take))
                left -= take
        workers.append(WorkerPlan(index, tuple(shares)))
    return LoadPlan(connections, tuple(workers), limits, per_process, per_source)


__all__ = [
    "DEFAULT_MAX_PROCESSES",
    "DEFAULT_PORT_SHARE",
    "DEFAULT_RESERVED_FILES",
    "Limits",
    "LoadPlan",
    "SourceShare",
    "WorkerPlan",
    "is_loopback",
    "loopback_sources",
    "parse_port_range",
    "plan_load",
    "read_limits",
]
