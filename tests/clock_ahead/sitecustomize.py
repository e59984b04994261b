"""Moves this process's wall clock ahead when ``SAYSO_TEST_CLOCK_AHEAD_DAYS`` is set (see tests/conftest.py).

Tests prepend this folder to ``PYTHONPATH`` so that every Python child they start (``sayso`` commands, servers,
MCP servers) lives in the same moved-ahead time as the test itself. Monotonic clocks and sleeps are untouched.
"""

import os

_DAYS = os.environ.get("SAYSO_TEST_CLOCK_AHEAD_DAYS")
if _DAYS:
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=float(_DAYS)), tick=True).start()
