"""Load planning: limits, processes and loopback source addresses."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.errors import ConfigurationError, PlanError
from connscale.loadgen.plan import (
    Limits,
    is_loopback,
    loopback_sources,
    parse_port_range,
    plan_load,
    read_limits,
)

HERE = Limits(open_files_soft=20_000, open_files_hard=20_000, port_low=32768, port_high=60999)
BIG_BOX = Limits(open_files_soft=20_000, open_files_hard=20_000, port_low=32768, port_high=60999)


def _check_plan_fits(connections: int, limits: Limits) -> None:
    plan = plan_load(connections, limits=limits)
    assert sum(worker.connections for worker in plan.workers) == connections
    for worker in plan.workers:
        assert worker.connections <= limits.open_files_hard - 128
        for share in worker.sources:
            assert share.connections <= limits.ports
    addresses = plan.source_addresses
    assert len(addresses) == len(set(addresses)), "two shares use the same source address"
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addresses)
    assert "127.0.0.1" not in addresses


def test_100k_connections_need_several_processes_and_sources() -> None:
    plan = plan_load(100_000, limits=HERE)
    assert plan.processes == 6  # 100,000 / (20,000 - 128) rounded up
    assert len(plan.source_addresses) == 6
    _check_plan_fits(100_000, HERE)


def test_a_million_connections_fit_with_one_address_per_process_share() -> None:
    plan = plan_load(1_000_000, limits=BIG_BOX)
    assert plan.processes == 51
    assert len(plan.source_addresses) >= 1_000_000 // plan.per_source
    _check_plan_fits(1_000_000, BIG_BOX)


def test_a_process_with_more_than_one_address_worth_of_ports_gets_several() -> None:
    tiny_ports = Limits(20_000, 20_000, 40000, 40999)  # 1,000 ports
    plan = plan_load(3_000, limits=tiny_ports)
    assert plan.processes == 1
    assert len(plan.workers[0].sources) == 4  # 850 ports used per address
    assert plan.workers[0].connections == 3_000


@given(st.integers(min_value=1, max_value=300_000))
def test_every_plan_fits_its_limits(connections: int) -> None:
    _check_plan_fits(connections, HERE)


def test_forced_process_count_is_checked() -> None:
    assert plan_load(1000, limits=HERE, processes=4).processes == 4
    with pytest.raises(PlanError, match="at least 6 processes"):
        plan_load(100_000, limits=HERE, processes=2)


def test_too_many_processes_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="more than the 10 allowed"):
        plan_load(1_000_000, limits=HERE, max_processes=10)


def test_a_tiny_open_files_limit_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="ulimit"):
        plan_load(10, limits=Limits(64, 64, 32768, 60999))


def test_non_loopback_target_is_bounded_by_one_address() -> None:
    plan = plan_load(100, limits=HERE, target_host="10.0.0.5")
    assert plan.source_addresses == ()
    assert plan.workers[0].sources[0].address is None
    with pytest.raises(PlanError, match="ephemeral ports"):
        plan_load(50_000, limits=HERE, target_host="10.0.0.5")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError):
        plan_load(0, limits=HERE)
    with pytest.raises(ConfigurationError):
        plan_load(10, limits=HERE, port_share=0)


def test_port_range_parsing() -> None:
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    for garbage in ("", "32768", "a b", "60999 32768", "0 10", "1 70000", "1 2 3"):
        with pytest.raises(PlanError):
            parse_port_range(garbage)


@given(st.text(max_size=40))
def test_port_range_parsing_never_crashes_on_garbage(text: str) -> None:
    try:
        low, high = parse_port_range(text)
    except PlanError:
        return
    assert 0 < low <= high <= 65535


def test_read_limits_reads_the_port_range_file(tmp_path: Path) -> None:
    path = tmp_path / "range"
    path.write_text("40000 40999\n")
    limits = read_limits(path)
    assert (limits.port_low, limits.port_high, limits.ports) == (40000, 40999, 1000)
    assert limits.open_files_hard >= limits.open_files_soft > 0
    fallback = read_limits(tmp_path / "missing")
    assert (fallback.port_low, fallback.port_high) == (32768, 60999)


def test_loopback_sources_skip_network_and_broadcast_host_parts() -> None:
    first = list(zip(range(600), loopback_sources(), strict=False))
    addresses = [address for _, address in first]
    assert addresses[0] == "127.0.0.2"
    assert not any(a.endswith((".0", ".255")) for a in addresses)
    assert len(set(addresses)) == len(addresses)
    last = list(loopback_sources(ipaddress.IPv4Address("127.255.255.250")))
    assert last == [
        "127.255.255.250",
        "127.255.255.251",
        "127.255.255.252",
        "127.255.255.253",
        "127.255.255.254",
    ]


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.1.2.3") and not is_loopback("example")
