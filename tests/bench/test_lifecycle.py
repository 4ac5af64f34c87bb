"""Server processes: a port already held is refused before anything starts."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from connscale.bench.lifecycle import check_port_free, file_stem, port_holder, running_server
from connscale.bench.targets import custom_server
from connscale.errors import ConfigurationError, ServerError


def test_file_stems_are_safe_for_any_name() -> None:
    assert file_stem("python /path/to/server.py 18001") == "python_path_to_server.py_18001"
    assert file_stem("../..") == "server"
    assert "/" not in file_stem("a/b") and len(file_stem("x" * 500)) == 64


def test_a_port_held_by_another_process_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        port = other.getsockname()[1]
        assert port_holder("127.0.0.1", port) is not None
        spec = custom_server(f"{sys.executable} -c 'raise SystemExit(3)'", port, max_connections=5)
        with pytest.raises(ConfigurationError, match=f"port {port} .* already in use"):
            check_port_free(spec)
        with pytest.raises(ConfigurationError, match="already in use"):
            running_server(spec, tmp_path).__enter__()
    assert not list(tmp_path.glob("*.log"))  # nothing was started


def test_a_server_that_exits_at_start_is_a_server_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = custom_server(f"{sys.executable} /no/such/dir/server.py", port, max_connections=5)
    with pytest.raises(ServerError, match="exited"), running_server(spec, tmp_path):
        pass
    assert (tmp_path / "server.py.log").exists()
