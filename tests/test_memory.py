"""Memory readers against real processes and fake /proc trees (missing, garbage, races)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connscale import memory
from connscale.errors import ConfigurationError, NotAvailableError, ProcessGoneError

ROLLUP = """\
55d7a6c8e000-7ffd1c5f7000 ---p 00000000 00:00 0                          [rollup]
Rss:                2000 kB
Pss:                1500 kB
Shared_Clean:        800 kB
Shared_Dirty:          0 kB
Private_Clean:       200 kB
Private_Dirty:      1000 kB
Anonymous:          1000 kB
Private_Hugetlb:       0 kB
Swap:                 12 kB
"""

STATUS = """\
Name:\tpython3
State:\tS (sleeping)
Pid:\t4242
VmRSS:\t    2000 kB
RssAnon:\t    1000 kB
VmSwap:\t      12 kB
"""


def fake_proc(root: Path, pid: int = 4242, *, rollup: str | None = ROLLUP, fds: int = 3) -> Path:
    piddir = root / str(pid)
    (piddir / "fd").mkdir(parents=True)
    for i in range(fds):
        (piddir / "fd" / str(i)).touch()
    if rollup is not None:
        (piddir / "smaps_rollup").write_text(rollup)
    (piddir / "status").write_text(STATUS)
    (piddir / "statm").write_text("1000 500 200 1 0 300 0\n")
    (piddir / "stat").write_text(f"{pid} (python3) S 1 2 3\n")
    return root


def test_reads_a_fake_rollup_exactly(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    sample = memory.sample(4242, proc_root=root, clock=lambda: 12.5)
    assert sample.pid == 4242
    assert sample.rss == 2000 * 1024
    assert sample.pss == 1500 * 1024
    assert sample.uss == 1200 * 1024  # private clean + private dirty
    assert sample.swap == 12 * 1024
    assert sample.anon == 1000 * 1024
    assert sample.fds == 3  # a tmpfs directory has no fd-count size: falls back to listing
    assert sample.py_heap_blocks is None  # not our process
    assert sample.timestamp == 12.5


def test_quick_sample_from_status(tmp_path: Path) -> None:
    sample = memory.sample_quick(4242, proc_root=fake_proc(tmp_path))
    assert (sample.rss, sample.anon, sample.swap) == (2000 * 1024, 1000 * 1024, 12 * 1024)
    assert sample.uss is None and sample.pss is None


def test_own_process_real_reading() -> None:
    sample = memory.sample()
    assert sample.pid == os.getpid()
    assert sample.uss is not None and sample.pss is not None
    assert 0 < sample.uss <= sample.rss
    assert sample.fds is not None and sample.fds >= 3
    assert sample.py_heap_blocks is not None and sample.py_heap_blocks > 0
    quick = memory.sample_quick()
    assert quick.anon is not None and quick.anon > 0


def test_fd_count_matches_the_fd_directory() -> None:
    before = memory.sample().fds
    extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    try:
        after = memory.sample().fds
    finally:
        for fd in extra:
            os.close(fd)
    assert before is not None and after == before + 10
    listed = len(os.listdir(f"/proc/{os.getpid()}/fd")) - 1  # listing opens one fd itself
    assert memory.sample().fds == listed


def test_missing_pid_is_gone(tmp_path: Path) -> None:
    with pytest.raises(ProcessGoneError, match="4243"):
        memory.sample(4243, proc_root=fake_proc(tmp_path))
    with pytest.raises(ProcessGoneError):
        memory.sample_quick(4243, proc_root=tmp_path)


def test_real_exited_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessGoneError):
        memory.sample(child.pid)


def test_exit_mid_sample_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_proc(tmp_path)
    piddir = root / "4242"
    real_read = memory._read_small

    def read_then_exit(path: str) -> bytes:
        data = real_read(path)
        # The process exits right after its memory was read: fd dir and pid dir vanish.
        for entry in sorted(piddir.rglob("*"), reverse=True):
            entry.rmdir() if entry.is_dir() else entry.unlink()
        piddir.rmdir()
        return data

    monkeypatch.setattr(memory, "_read_small", read_then_exit)
    with pytest.raises(ProcessGoneError):
        memory.sample(4242, proc_root=root)


def test_zombie_is_gone(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, rollup="")
    (root / "4242" / "stat").write_text("4242 (py thon)) Z 1 2 3\n")
    with pytest.raises(ProcessGoneError, match="zombie"):
        memory.sample(4242, proc_root=root)


def test_empty_rollup_of_a_live_process_is_not_available(tmp_path: Path) -> None:
    with pytest.raises(NotAvailableError, match="empty"):
        memory.sample(4242, proc_root=fake_proc(tmp_path, rollup=""))


def test_missing_rollup_falls_back_to_statm_with_marked_gaps(tmp_path: Path) -> None:
    sample = memory.sample(4242, proc_root=fake_proc(tmp_path, rollup=None))
    assert sample.rss == 500 * os.sysconf("SC_PAGE_SIZE")
    assert sample.uss is None and sample.pss is None and sample.swap is None


def test_nothing_readable_is_not_available(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, rollup=None)
    (root / "4242" / "statm").unlink()
    with pytest.raises(NotAvailableError, match="statm"):
        memory.sample(4242, proc_root=root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_rollup_falls_back(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    (root / "4242" / "smaps_rollup").chmod(0)
    sample = memory.sample(4242, proc_root=root)
    assert sample.uss is None


def test_unreadable_rollup_via_permission_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_proc(tmp_path)
    real_read = memory._read_small

    def deny_rollup(path: str) -> bytes:
        if path.endswith("smaps_rollup"):
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    monkeypatch.setattr(memory, "_read_small", deny_rollup)
    sample = memory.sample(4242, proc_root=root)
    assert sample.uss is None and sample.rss > 0


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_garbage_rollup_gives_a_reading_or_not_available(tmp_path: Path, garbage: bytes) -> None:
    root = tmp_path / "proc"
    piddir = root / "77"
    (piddir / "fd").mkdir(parents=True, exist_ok=True)
    (piddir / "smaps_rollup").write_bytes(garbage)
    (piddir / "status").write_bytes(garbage)
    (piddir / "stat").write_text("77 (x) S 1\n")
    for reader in (memory.sample, memory.sample_quick):
        try:
            sample = reader(77, proc_root=root)
        except NotAvailableError:
            continue
        assert sample.rss >= 0


def test_garbage_value_is_not_available(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, rollup="Rss: lots kB\n")
    with pytest.raises(NotAvailableError, match="unexpected"):
        memory.sample(4242, proc_root=root)
    with pytest.raises(NotAvailableError, match="Rss"):
        memory.sample(4242, proc_root=fake_proc(tmp_path / "b", rollup="Hello: 1 kB\n"))


def test_bad_pid_argument() -> None:
    with pytest.raises(ConfigurationError):
        memory.sample(-1)


def test_group_sums_and_lists_missing(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, 10)
    fake_proc(tmp_path, 11)
    group = memory.sample_group([10, 11, 12, 10], proc_root=root)
    assert group.pids == (10, 11)
    assert group.missing == (12,)
    assert group.uss == 2 * 1200 * 1024
    assert group.rss == 2 * 2000 * 1024
    assert group.fds == 6


def test_group_with_an_unknown_part_is_unknown(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, 10)
    fake_proc(tmp_path, 11, rollup=None)
    group = memory.sample_group([10, 11], proc_root=root)
    assert group.uss is None  # not a smaller, made-up sum
    assert group.rss > 0


def test_group_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        memory.sample_group([])
    with pytest.raises(ProcessGoneError):
        memory.sample_group([5, 6], proc_root=tmp_path)


SOCKSTAT = """\
sockets: used 301
TCP: inuse 120 orphan 2 tw 7 alloc 130 mem 50
UDP: inuse 1 mem 0
"""

SLABINFO = """\
slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables
TCP                  100    112   2368   13    8 : tunables    0    0    0 : slabdata
sock_inode_cache     200    220    832   19    4 : tunables    0    0    0 : slabdata
kmalloc-64          9999   9999     64   64    1 : tunables    0    0    0 : slabdata
"""


def test_kernel_sockets_from_fake_files(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "sockstat").write_text(SOCKSTAT)
    (tmp_path / "slabinfo").write_text(SLABINFO)
    ks = memory.kernel_sockets(proc_root=tmp_path)
    assert ks.available and ks.reason is None
    assert (ks.tcp_inuse, ks.tcp_orphan, ks.tcp_tw, ks.tcp_alloc) == (120, 2, 7, 130)
    assert ks.tcp_mem_bytes == 50 * os.sysconf("SC_PAGE_SIZE")
    assert ks.slab is not None and set(ks.slab) == {"TCP", "sock_inode_cache"}
    assert ks.slab["TCP"].active_bytes == 100 * 2368
    assert ks.slab_bytes_per_socket == pytest.approx((100 * 2368 + 200 * 832) / 130)


def test_kernel_sockets_missing_files_are_marked(tmp_path: Path) -> None:
    ks = memory.kernel_sockets(proc_root=tmp_path)
    assert not ks.available
    assert ks.reason is not None and "sockstat" in ks.reason and "slabinfo" in ks.reason
    assert ks.tcp_inuse is None and ks.tcp_mem_bytes is None and ks.slab is None
    assert ks.slab_bytes_per_socket is None


@given(st.text(max_size=300), st.text(max_size=300))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_kernel_sockets_garbage_never_crashes(tmp_path: Path, sockstat: str, slab: str) -> None:
    (tmp_path / "net").mkdir(exist_ok=True)
    (tmp_path / "net" / "sockstat").write_text(sockstat, errors="replace")
    (tmp_path / "slabinfo").write_text(slab, errors="replace")
    ks = memory.kernel_sockets(proc_root=tmp_path)
    assert ks.available == (ks.tcp_inuse is not None or ks.tcp_alloc is not None or ks.available)
    if not ks.available:
        assert ks.reason


def test_kernel_sockets_on_this_machine() -> None:
    ks = memory.kernel_sockets()
    if ks.available:
        assert ks.tcp_inuse is not None and ks.tcp_inuse >= 0
    else:
        assert ks.reason


def _fake_proc(root: Path, *, slabinfo: str | None) -> None:
    fd = root / "4242" / "fd"
    fd.mkdir(parents=True)
    (fd / "0").symlink_to("/dev/null")
    for n, inode in enumerate((1001, 1002, 1003), start=3):
        (fd / str(n)).symlink_to(f"socket:[{inode}]")
    (fd / "9").symlink_to("pipe:[77]")
    net = root / "4242" / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when uid inode\n"
    rows = [
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1001 1\n",
        "   1: 0100007F:1F90 0200007F:8000 01 00000010:00000020 00:00000000 00000000 0 0 1002 1\n",
        "   2: 0100007F:1F90 0200007F:8001 01 00000100:00000000 00:00000000 00000000 0 0 9999 1\n",
        "garbage line\n",
    ]
    (net / "tcp").write_text(header + "".join(rows))
    (net / "tcp6").write_text(header)
    if slabinfo is not None:
        (root / "slabinfo").write_text(slabinfo)


SOCKET_SLABINFO = (
    "slabinfo - version: 2.1\n"
    "# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables\n"
    "TCP 100 120 2368 13 8 : tunables 0 0 0\n"
    "sock_inode_cache 300 320 832 39 8 : tunables 0 0 0\n"
    "filp 900 1000 256 32 2 : tunables 0 0 0\n"
    "dentry 900 1000 192 42 2 : tunables 0 0 0\n"
    "eventpoll_epi 100 100 128 32 1 : tunables 0 0 0\n"
)


def test_process_sockets_counts_only_its_own_sockets(tmp_path: Path) -> None:
    from connscale.memory import process_sockets

    _fake_proc(tmp_path, slabinfo=SOCKET_SLABINFO)
    found = process_sockets([4242], proc_root=tmp_path)
    assert (found.sockets, found.tcp) == (3, 2)
    assert found.queued_bytes == 0x10 + 0x20  # socket 9999 is another process's
    assert found.object_bytes == 2368 + 832 + 256 + 192 + 128
    assert found.kernel_bytes == 3 * found.object_bytes + 0x30
    assert found.bytes_per_socket == pytest.approx(found.kernel_bytes / 3)


def test_process_sockets_without_slabinfo_says_why(tmp_path: Path) -> None:
    from connscale.errors import ProcessGoneError
    from connscale.memory import process_sockets

    _fake_proc(tmp_path, slabinfo="not a slabinfo\n")
    found = process_sockets([4242, 99999], proc_root=tmp_path)  # 99999 has exited
    assert found.sockets == 3 and found.object_bytes is None and found.kernel_bytes is None
    assert found.reason is not None and "slabinfo" in found.reason
    with pytest.raises(ProcessGoneError):
        process_sockets([99999], proc_root=tmp_path)
