"""Memory readers: USS/PSS/RSS/swap of a process (or a group), open fds, kernel socket memory.

Two costs, two readers. ``sample()`` reads ``/proc/<pid>/smaps_rollup`` once: exact USS
and PSS, but the kernel walks every mapped page to sum them, so it costs ~2 ms per 200 MB
resident (measured). ``sample_quick()`` reads ``/proc/<pid>/status``, whose RSS, anonymous
and swap figures are O(1) kernel counters (~20 us): the monitor ticks with it and takes a
full reading now and then. Both add one ``stat`` of ``/proc/<pid>/fd`` (its size is the
open-fd count since Linux 6.2; older kernels fall back to listing the directory). Other
systems use psutil. Every reader takes ``proc_root`` so tests can feed fake or garbage files.

A figure this system cannot give is ``None`` (or ``NotAvailableError`` when nothing can be
read), never a made-up number. A process that does not exist, or exits while it is being
read, raises ``ProcessGoneError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from connscale.clock import Timer
from connscale.errors import ConfigurationError, NotAvailableError, ProcessGoneError

PROC_ROOT = "/proc"

#: smaps_rollup fields we keep; values there are in kB (KiB).
_ROLLUP_FIELDS = {
    b"Rss:": "rss",
    b"Pss:": "pss",
    b"Private_Clean:": "private_clean",
    b"Private_Dirty:": "private_dirty",
    b"Private_Hugetlb:": "private_hugetlb",
    b"Swap:": "swap",
    b"Anonymous:": "anon",
}

#: A smaps_rollup is about 1 KiB; a larger read means something is not what we expect.
_MAX_PROC_FILE = 64 * 1024

#: slabinfo caches that make up the kernel's per-TCP-socket cost.
SOCKET_SLABS = (
    "TCP",
    "TCPv6",
    "sock_inode_cache",
    "request_sock_TCP",
    "tcp_bind_bucket",
    "eventpoll_epi",
    "filp",
    "dentry",
)


@dataclass(frozen=True, slots=True)
class MemorySample:
    """One reading of one process; byte figures, ``None`` where this system cannot tell."""

    pid: int
    uss: int | None  # private (unique) memory: what the process alone costs
    pss: int | None  # proportional share, shared pages split between their users
    rss: int
    swap: int | None
    fds: int | None  # open file descriptors
    py_heap_blocks: int | None  # sys.getallocatedblocks(), only for our own process
    timestamp: float
    anon: int | None = None  # resident anonymous memory (heap, stacks): RssAnon in status


@dataclass(frozen=True)
class GroupSample:
    """Sums over a group of processes (a server's workers); ``missing`` pids had exited."""

    pids: tuple[int, ...]
    uss: int | None
    pss: int | None
    rss: int
    swap: int | None
    fds: int | None
    timestamp: float
    missing: tuple[int, ...] = ()
    samples: tuple[MemorySample, ...] = ()


def _combined(group: GroupSample) -> MemorySample:
    first = group.samples[0] if group.samples else None
    return MemorySample(
        pid=group.pids[0],
        uss=group.uss,
        pss=group.pss,
        rss=group.rss,
        swap=group.swap,
        fds=group.fds,
        py_heap_blocks=first.py_heap_blocks if first else None,
        timestamp=group.timestamp,
        anon=_sum_or_none(s.anon for s in group.samples),
    )


@dataclass(frozen=True, slots=True)
class SlabEntry:
    """One kernel slab cache from /proc/slabinfo."""

    name: str
    active_objects: int
    total_objects: int
    object_size: int

    @property
    def active_bytes(self) -> int:
        return self.active_objects * self.object_size


@dataclass(frozen=True)
class KernelSockets:
    """Kernel-side socket memory; ``available`` is False (with ``reason``) when unreadable."""

    available: bool
    reason: str | None
    tcp_inuse: int | None
    tcp_orphan: int | None
    tcp_tw: int | None
    tcp_alloc: int | None
    tcp_mem_pages: int | None
    tcp_mem_bytes: int | None
    slab: Mapping[str, SlabEntry] | None

    @property
    def slab_bytes_per_socket(self) -> float | None:
        """Active bytes of the socket slab caches per allocated TCP socket (approximate)."""
        if not self.slab or not self.tcp_alloc:
            return None
        total = sum(entry.active_bytes for entry in self.slab.values())
        return total / self.tcp_alloc


def _read_small(path: str) -> bytes:
    """One read of a small /proc file (no Python buffering layer: this is the hot path)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, _MAX_PROC_FILE)
    finally:
        os.close(fd)


def _parse_rollup(data: bytes, path: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in data.split(b"\n"):
        parts = line.split()
        if len(parts) >= 2:
            name = _ROLLUP_FIELDS.get(parts[0])
            if name is not None:
                try:
                    values[name] = int(parts[1]) * 1024
                except ValueError:
                    raise NotAvailableError(
                        f"{path}: unexpected value {line[:80]!r}; cannot read memory"
                    ) from None
    if "rss" not in values:
        raise NotAvailableError(f"{path}: no 'Rss:' line; not a smaps_rollup this reader knows")
    return values


def _status_kib(data: bytes, key: bytes) -> int | None:
    """The ``key: N kB`` figure of a status file in bytes, None when absent or garbled."""
    start = data.find(key)
    if start < 0:
        return None
    end = data.find(b"\n", start + len(key))
    words = data[start + len(key) : end if end >= 0 else len(data)].split()
    if not words or not words[0].isdigit():
        return None
    return int(words[0]) * 1024


class MemoryReader:
    """Reads one process repeatedly; paths are built once (a monitor keeps one of these)."""

    __slots__ = (
        "_clock",
        "_fd_dir",
        "_fd_size_is_count",
        "_own",
        "_pid_dir",
        "_rollup",
        "_statm",
        "_status",
        "_use_proc",
        "pid",
    )

    def __init__(
        self,
        pid: int | None = None,
        *,
        proc_root: str | os.PathLike[str] | None = None,
        clock: Timer = time.time,
    ) -> None:
        if pid is not None and (not isinstance(pid, int) or pid <= 0):
            raise ConfigurationError(f"pid must be a positive integer, got {pid!r}")
        self.pid = os.getpid() if pid is None else pid
        self._own = self.pid == os.getpid()
        self._clock = clock
        root = os.fspath(proc_root) if proc_root is not None else PROC_ROOT
        # An explicit root means "read these files" (tests); the default root is used only
        # where it exists (Linux), else psutil answers.
        self._use_proc = proc_root is not None or os.path.isdir(os.path.join(root, "self"))
        self._pid_dir = os.path.join(root, str(self.pid))
        self._rollup = os.path.join(self._pid_dir, "smaps_rollup")
        self._statm = os.path.join(self._pid_dir, "statm")
        self._status = os.path.join(self._pid_dir, "status")
        self._fd_dir = os.path.join(self._pid_dir, "fd")
        # Only procfs reports the fd count as the directory size (any other fs: bytes).
        self._fd_size_is_count = proc_root is None

    def sample(self) -> MemorySample:
        """Take one reading; ProcessGoneError if the process is gone."""
        if not self._use_proc:
            return self._sample_psutil()
        try:
            data = _read_small(self._rollup)
        except FileNotFoundError:
            self._raise_if_gone()
            return self._sample_statm("smaps_rollup is missing (kernel older than 4.14?)")
        except PermissionError:
            self._raise_if_gone()
            return self._sample_statm("smaps_rollup is not readable (another user's process?)")
        except ProcessLookupError:
            raise ProcessGoneError(f"process {self.pid} exited while being read") from None
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessGoneError(f"process {self.pid} exited while being read") from None
            raise NotAvailableError(f"{self._rollup}: {exc.strerror}") from None
        if not data:
            # A zombie (or a kernel thread) has no memory map: an empty rollup.
            self._raise_if_gone(zombie_is_gone=True)
            raise NotAvailableError(
                f"{self._rollup} is empty: process {self.pid} has no memory map"
            )
        values = _parse_rollup(data, self._rollup)
        private = values.get("private_clean"), values.get("private_dirty")
        uss = (
            None
            if private[0] is None or private[1] is None
            else private[0] + private[1] + values.get("private_hugetlb", 0)
        )
        return MemorySample(
            pid=self.pid,
            uss=uss,
            pss=values.get("pss"),
            rss=values["rss"],
            swap=values.get("swap"),
            fds=self._count_fds(),
            py_heap_blocks=sys.getallocatedblocks() if self._own else None,
            timestamp=self._clock(),
            anon=values.get("anon"),
        )

    def sample_quick(self) -> MemorySample:
        """RSS, anonymous RSS, swap and fds from O(1) kernel counters; USS/PSS are None."""
        if not self._use_proc:
            return self._sample_psutil()
        try:
            data = _read_small(self._status)
        except FileNotFoundError:
            self._raise_if_gone()
            raise NotAvailableError(f"{self._status} is missing") from None
        except ProcessLookupError:
            raise ProcessGoneError(f"process {self.pid} exited while being read") from None
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessGoneError(f"process {self.pid} exited while being read") from None
            raise NotAvailableError(f"{self._status}: {exc.strerror}") from None
        rss = _status_kib(data, b"\nVmRSS:")
        if rss is None:
            self._raise_if_gone(zombie_is_gone=True)
            raise NotAvailableError(f"{self._status}: no VmRSS line (no memory map?)")
        swap = _status_kib(data, b"\nVmSwap:")
        return MemorySample(
            pid=self.pid,
            uss=None,
            pss=None,
            rss=rss,
            swap=swap,
            fds=self._count_fds(),
            py_heap_blocks=sys.getallocatedblocks() if self._own else None,
            timestamp=self._clock(),
            anon=_status_kib(data, b"\nRssAnon:"),
        )

    def _count_fds(self) -> int | None:
        try:
            if self._fd_size_is_count:
                # Linux >= 6.2 reports the number of open fds as the directory size
                # (one stat instead of listing 20,000 entries); older kernels say 0.
                size = os.stat(self._fd_dir).st_size
                if size > 0:
                    return size
            return len(os.listdir(self._fd_dir))
        except FileNotFoundError:
            self._raise_if_gone()
            return None
        except (PermissionError, NotADirectoryError):
            return None
        except ProcessLookupError:
            raise ProcessGoneError(f"process {self.pid} exited while being read") from None

    def _raise_if_gone(self, *, zombie_is_gone: bool = False) -> None:
        if not os.path.isdir(self._pid_dir):
            raise ProcessGoneError(f"process {self.pid} does not exist (or has exited)")
        if zombie_is_gone:
            try:
                stat = _read_small(os.path.join(self._pid_dir, "stat"))
            except OSError:
                return
            # Field 3 (after the parenthesised name) is the state; Z = zombie, X = dead.
            state = stat.rpartition(b")")[2].split()[:1]
            if state and state[0] in (b"Z", b"X"):
                raise ProcessGoneError(f"process {self.pid} has exited (zombie)")

    def _sample_statm(self, why: str) -> MemorySample:
        """RSS only, from statm (readable for every process); USS/PSS/swap not available."""
        try:
            fields = _read_small(self._statm).split()
            rss = int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
        except FileNotFoundError:
            self._raise_if_gone()
            raise NotAvailableError(f"process {self.pid}: {why}, and statm is missing") from None
        except (OSError, ValueError, IndexError):
            raise NotAvailableError(f"process {self.pid}: {why}, and statm is unreadable") from None
        return MemorySample(
            pid=self.pid,
            uss=None,
            pss=None,
            rss=rss,
            swap=None,
            fds=self._count_fds(),
            py_heap_blocks=sys.getallocatedblocks() if self._own else None,
            timestamp=self._clock(),
        )

    def _sample_psutil(self) -> MemorySample:
        try:
            process = psutil.Process(self.pid)
            with process.oneshot():
                try:
                    full = process.memory_full_info()
                    uss: int | None = full.uss
                    pss: int | None = getattr(full, "pss", None)
                    swap: int | None = getattr(full, "swap", None)
                    rss = int(full.rss)
                except psutil.AccessDenied:
                    uss = pss = swap = None
                    rss = int(process.memory_info().rss)
                try:
                    fds: int | None = process.num_fds()
                except (psutil.AccessDenied, AttributeError):
                    fds = None
        except psutil.NoSuchProcess:
            raise ProcessGoneError(f"process {self.pid} does not exist (or has exited)") from None
        except psutil.AccessDenied:
            raise NotAvailableError(f"process {self.pid}: access denied") from None
        return MemorySample(
            pid=self.pid,
            uss=uss,
            pss=pss,
            rss=rss,
            swap=swap,
            fds=fds,
            py_heap_blocks=sys.getallocatedblocks() if self._own else None,
            timestamp=self._clock(),
        )


def sample(
    pid: int | None = None,
    *,
    proc_root: str | os.PathLike[str] | None = None,
    clock: Timer = time.time,
) -> MemorySample:
    """Read one process (ours when ``pid`` is None): ProcessGoneError / NotAvailableError."""
    return MemoryReader(pid, proc_root=proc_root, clock=clock).sample()


def sample_quick(
    pid: int | None = None,
    *,
    proc_root: str | os.PathLike[str] | None = None,
    clock: Timer = time.time,
) -> MemorySample:
    """Cheap reading (RSS, anonymous, swap, fds; no USS/PSS) for frequent monitoring."""
    return MemoryReader(pid, proc_root=proc_root, clock=clock).sample_quick()


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None  # one unknown part makes the sum unknown, not smaller
        total += value
    return total


def sample_group(
    pids: Iterable[int],
    *,
    proc_root: str | os.PathLike[str] | None = None,
    clock: Timer = time.time,
) -> GroupSample:
    """Sum the readings of several processes; pids that have exited are listed in ``missing``.

    Raises ProcessGoneError when none of them could be read.
    """
    wanted = tuple(dict.fromkeys(pids))  # keep order, drop duplicates
    if not wanted:
        raise ConfigurationError("sample_group needs at least one pid")
    samples: list[MemorySample] = []
    missing: list[int] = []
    for pid in wanted:
        try:
            samples.append(sample(pid, proc_root=proc_root, clock=clock))
        except ProcessGoneError:
            missing.append(pid)
    if not samples:
        raise ProcessGoneError(f"none of the processes {list(wanted)} exist any more")
    return GroupSample(
        pids=tuple(s.pid for s in samples),
        uss=_sum_or_none(s.uss for s in samples),
        pss=_sum_or_none(s.pss for s in samples),
        rss=sum(s.rss for s in samples),
        swap=_sum_or_none(s.swap for s in samples),
        fds=_sum_or_none(s.fds for s in samples),
        timestamp=clock(),
        missing=tuple(missing),
        samples=tuple(samples),
    )


def descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children and their children (a server's workers); [] if gone."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def sample_tree(pid: int, *, clock: Timer = time.time) -> tuple[MemorySample, int]:
    """One reading summed over ``pid`` and its descendants, and how many processes it covers.

    Forked workers share copy-on-write pages: their USS sum undercounts what the server
    costs, their PSS sum (each shared page split between its users) is the total. The
    reading carries ``pid`` as its pid. ProcessGoneError when ``pid`` itself has exited.
    """
    group = sample_group([pid, *descendants(pid)], clock=clock)
    if pid in group.missing:
        raise ProcessGoneError(f"process {pid} does not exist (or has exited)")
    return _combined(group), len(group.pids)


def _parse_sockstat(text: str) -> dict[str, int]:
    for line in text.splitlines():
        if line.startswith("TCP:"):
            words = line.split()[1:]
            if len(words) % 2:
                break
            try:
                return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}
            except ValueError:
                break
    raise ValueError("no well-formed 'TCP:' line")


def _parse_slabinfo(text: str, names: Iterable[str]) -> dict[str, SlabEntry]:
    wanted = set(names)
    found: dict[str, SlabEntry] = {}
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version: 2."):
        raise ValueError("not a slabinfo 2.x file")
    for line in lines[1:]:
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[0] in wanted:
            found[fields[0]] = SlabEntry(
                name=fields[0],
                active_objects=int(fields[1]),
                total_objects=int(fields[2]),
                object_size=int(fields[3]),
            )
    return found


def kernel_sockets(
    *, proc_root: str | os.PathLike[str] | None = None, slabs: Iterable[str] = SOCKET_SLABS
) -> KernelSockets:
    """TCP sockets and kernel TCP memory (sockstat), socket slab caches (slabinfo, root only).

    Never raises for a missing or garbled file: ``available``/``reason`` and ``None`` say so.
    """
    root = Path(proc_root if proc_root is not None else PROC_ROOT)
    reasons: list[str] = []
    tcp: dict[str, int] = {}
    try:
        tcp = _parse_sockstat((root / "net" / "sockstat").read_text(errors="replace"))
    except OSError as exc:
        reasons.append(f"net/sockstat: {exc.strerror or exc}")
    except ValueError as exc:
        reasons.append(f"net/sockstat: {exc}")
    slab: dict[str, SlabEntry] | None = None
    try:
        slab = _parse_slabinfo((root / "slabinfo").read_text(errors="replace"), slabs)
    except PermissionError:
        reasons.append("slabinfo: permission denied (readable by root only)")
    except OSError as exc:
        reasons.append(f"slabinfo: {exc.strerror or exc}")
    except ValueError as exc:
        reasons.append(f"slabinfo: {exc}")
    pages = tcp.get("mem")
    return KernelSockets(
        available=bool(tcp),
        reason="; ".join(reasons) or None,
        tcp_inuse=tcp.get("inuse"),
        tcp_orphan=tcp.get("orphan"),
        tcp_tw=tcp.get("tw"),
        tcp_alloc=tcp.get("alloc"),
        tcp_mem_pages=pages,
        tcp_mem_bytes=None if pages is None else pages * os.sysconf("SC_PAGE_SIZE"),
        slab=slab,
    )


#: Slab objects the kernel allocates for each TCP socket a process holds (the socket, its
#: inode, the open file, its dentry, and an epoll item when the server polls it).
SOCKET_OBJECT_SLABS = ("sock_inode_cache", "filp", "dentry", "eventpoll_epi")


@dataclass(frozen=True, slots=True)
class ProcessSockets:
    """The sockets a group of processes holds, and the kernel memory they account for.

    Counted from the processes' own fds (not system-wide): ``sockets`` fds are sockets,
    ``tcp`` of them were found in ``net/tcp``/``tcp6`` with ``queued_bytes`` in their send
    and receive queues. ``object_bytes`` is what the kernel's slab caches charge one TCP
    socket (slabinfo object sizes: the TCP sock, inode, file, dentry, epoll item), None
    where slabinfo cannot be read (``reason`` says why).
    """

    pids: tuple[int, ...]
    sockets: int
    tcp: int
    queued_bytes: int
    object_bytes: int | None
    reason: str | None = None

    @property
    def kernel_bytes(self) -> int | None:
        """Kernel memory these sockets hold: objects per socket times sockets, plus queues."""
        if self.object_bytes is None:
            return None
        return self.sockets * self.object_bytes + self.queued_bytes

    @property
    def bytes_per_socket(self) -> float | None:
        total = self.kernel_bytes
        return None if total is None or not self.sockets else total / self.sockets


def _socket_inodes(fd_dir: str) -> set[int]:
    inodes: set[int] = set()
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        raise ProcessGoneError(f"{fd_dir} is gone: the process exited") from None
    except PermissionError:
        raise NotAvailableError(f"{fd_dir}: permission denied") from None
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:[") and target.endswith("]"):
            with contextlib.suppress(ValueError):
                inodes.add(int(target[8:-1]))
    return inodes


def _tcp_queues(path: str, inodes: set[int]) -> tuple[int, int]:
    """(sockets of ``inodes`` found, their tx+rx queued bytes) in a /proc/net/tcp file."""
    found = queued = 0
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            next(file, None)  # the header
            for line in file:
                fields = line.split()
                if len(fields) < 10 or not fields[9].isdigit():
                    continue
                if int(fields[9]) in inodes:
                    tx, _, rx = fields[4].partition(":")
                    try:
                        queued += int(tx, 16) + int(rx, 16)
                    except ValueError:
                        continue
                    found += 1
    except OSError:
        pass
    return found, queued


def socket_object_bytes(
    *, proc_root: str | os.PathLike[str] | None = None
) -> tuple[int | None, str | None]:
    """(slab bytes per TCP socket, None) from slabinfo, or (None, why it is unknown)."""
    root = Path(proc_root if proc_root is not None else PROC_ROOT)
    try:
        slab = _parse_slabinfo(
            (root / "slabinfo").read_text(errors="replace"), ("TCP", *SOCKET_OBJECT_SLABS)
        )
    except PermissionError:
        return None, "slabinfo is readable by root only"
    except (OSError, ValueError) as exc:
        return None, f"slabinfo: {exc}"
    if "TCP" not in slab:
        return None, "slabinfo lists no TCP cache (merged into another on this kernel?)"
    missing = [name for name in SOCKET_OBJECT_SLABS if name not in slab]
    total = sum(entry.object_size for entry in slab.values())
    return total, (f"slab caches not listed (merged): {', '.join(missing)}" if missing else None)


def process_sockets(
    pids: Iterable[int], *, proc_root: str | os.PathLike[str] | None = None
) -> ProcessSockets:
    """Count the sockets ``pids`` hold and the kernel memory charged to them.

    NotAvailableError when no process's fds can be listed; processes that exited are
    skipped (ProcessGoneError when all have).
    """
    root = os.fspath(proc_root) if proc_root is not None else PROC_ROOT
    wanted = tuple(dict.fromkeys(pids))
    if not wanted:
        raise ConfigurationError("process_sockets needs at least one pid")
    inodes: set[int] = set()
    seen: list[int] = []
    for pid in wanted:
        try:
            inodes |= _socket_inodes(os.path.join(root, str(pid), "fd"))
        except ProcessGoneError:
            continue
        seen.append(pid)
    if not seen:
        raise ProcessGoneError(f"none of the processes {list(wanted)} exist any more")
    tcp = queued = 0
    for name in ("tcp", "tcp6"):
        found, bytes_queued = _tcp_queues(os.path.join(root, str(seen[0]), "net", name), inodes)
        tcp += found
        queued += bytes_queued
    object_bytes, reason = socket_object_bytes(proc_root=proc_root)
    return ProcessSockets(
        pids=tuple(seen),
        sockets=len(inodes),
        tcp=tcp,
        queued_bytes=queued,
        object_bytes=object_bytes,
        reason=reason,
    )


__all__ = [
    "PROC_ROOT",
    "SOCKET_OBJECT_SLABS",
    "ProcessSockets",
    "process_sockets",
    "socket_object_bytes",
    "SOCKET_SLABS",
    "GroupSample",
    "KernelSockets",
    "MemoryReader",
    "MemorySample",
    "SlabEntry",
    "kernel_sockets",
    "sample",
    "sample_group",
    "sample_quick",
    "sample_tree",
]
