"""Print the fuzzer's figures at the end of the run, whichever process (an xdist worker) ran it."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "fuzzer"
    ]
    for line in lines:
        terminalreporter.write_line(line)
