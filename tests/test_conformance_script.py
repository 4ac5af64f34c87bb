"""scripts/conformance.py: reading the suite's output, and the Markdown table of a run."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from support import load_file

conformance = load_file("conformance_script", "scripts/conformance.py")

SUMMARY = """\
Running client scenario 'ping' against server: http://127.0.0.1:1/mcp
=== SUMMARY ===
\x1b[32m✓ ping: 2 passed, 0 failed\x1b[0m
✗ tools-list: 1 passed, 2 failed
✓ server-sse-polling: 0 passed, 0 failed
Total: 3 passed, 2 failed
"""
LISTING = """\
Server scenarios (test against a server):
  - ping [2025-06-18,2025-11-25]
  - tools-list [2025-06-18,2025-11-25,2026-07-28]
  - tasks-lifecycle [extension]
  - server-sse-polling [2025-11-25]
"""


def test_the_summary_and_the_listing_are_read() -> None:
    assert conformance.parse_summary(SUMMARY) == [
        ("ping", True, 2, 0),
        ("tools-list", False, 1, 2),
        ("server-sse-polling", True, 0, 0),
    ]
    assert conformance.parse_listing(LISTING) == {
        "ping": ("2025-06-18", "2025-11-25"),
        "tools-list": ("2025-06-18", "2025-11-25", "2026-07-28"),
        "tasks-lifecycle": ("extension",),
        "server-sse-polling": ("2025-11-25",),
    }


@given(st.text(max_size=300))
def test_garbage_output_gives_no_rows_rather_than_an_error(text: str) -> None:
    for row in conformance.parse_summary(text):
        assert row[0] and row[2] >= 0 and row[3] >= 0
    for name, tags in conformance.parse_listing(text).items():
        assert name and isinstance(tags, tuple)


def test_the_table_says_where_each_scenario_ran_and_how_it_did() -> None:
    outcome = conformance.Outcome
    outcomes = [
        outcome("epoll", "2025-11-25", "ping", True, 2, 0),
        outcome("asyncio", "2025-11-25", "ping", True, 2, 0),
        outcome("epoll", "2025-11-25", "tools-list", True, 3, 0),
        outcome("epoll", "2026-07-28", "tools-list", True, 4, 0),
        outcome("asyncio", "2025-11-25", "tools-list", True, 3, 0),
        outcome("asyncio", "2026-07-28", "tools-list", False, 1, 2),
        outcome("epoll", "2025-11-25", "server-sse-polling", True, 0, 0),
    ]
    text = conformance.markdown_table(
        outcomes,
        conformance.parse_listing(LISTING),
        command="python scripts/conformance.py --markdown x.md",
        date="2026-12-01",
    )
    assert "- Command: `python scripts/conformance.py --markdown x.md`" in text
    assert f"- Suite: `@modelcontextprotocol/conformance@{conformance.SUITE_VERSION}`" in text
    assert "- Date: 2026-12-01" in text and "- Result: 6 of 7 scenario runs passed" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `ping` | 2025-06-18, 2025-11-25 | 2025-11-25 | 2025-11-25: pass (2 checks) "
        "| 2025-11-25: pass (2 checks) |",
        "| `tools-list` | 2025-06-18, 2025-11-25, 2026-07-28 | 2025-11-25, 2026-07-28 "
        "| 2025-11-25: pass (3 checks)<br>2026-07-28: pass (4 checks) "
        "| 2025-11-25: pass (3 checks)<br>2026-07-28: **FAIL** (2 of 3 checks failed) |",
        "| `tasks-lifecycle` | extension | not run: an extension, not a revision "
        "| not run | not run |",
        "| `server-sse-polling` | 2025-11-25 | 2025-11-25 "
        "| 2025-11-25: pass (no scored check: informational only) | 2025-11-25: not run |",
    ]
