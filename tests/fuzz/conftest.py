"""Hypothesis profiles and the per-handler outcome counts `make fuzz` prints.

``fast`` (the default, in ``make test``): a few dozen examples per handler, derandomized, so a run is reproducible.
``fuzz`` (``make fuzz``): ``FUZZ_EXAMPLES`` (default 1,000) examples per handler, derandomized too.
"""

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.harness import OUTCOMES

_COMMON = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("fast", max_examples=int(os.environ.get("FUZZ_FAST_EXAMPLES", "30")), **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section(f"fuzz outcomes per handler (profile {settings().max_examples} examples)")
    for target in sorted(OUTCOMES):
        counts: Counter[str] = OUTCOMES[target]
        detail = ", ".join(f"{outcome}={count}" for outcome, count in sorted(counts.items()))
        terminalreporter.write_line(f"{target:32} total={sum(counts.values()):5}  {detail}")
