"""A compute log manager that keeps what sensors and schedules log, and captures no step output.

Dagster's :class:`LocalComputeLogManager` mirrors each step's stdout and stderr into files
through a ``tail -F`` process per step, which a local run pays for on every asset; Slipway
keeps steps' own lines in the event log (``context.log``, metadata) instead. Sensor and schedule
ticks write their ``context.log`` lines through :meth:`open_log_stream`, which costs nothing
until a tick logs: this class keeps that, so the UI's "View logs" of a tick shows what it decided,
and turns the per-step capture into a no-op. Private Dagster API: ``tests/stacks/test_dagster_storage.py``
holds it to the behaviour relied on.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager


class TickLogsOnly(LocalComputeLogManager):
    """Keeps sensor and schedule tick logs (files under ``base_dir``); captures no step stdout/stderr."""

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> TickLogsOnly:  # noqa: D102
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:  # noqa: D102
        yield CapturedLogContext(log_key)
