"""The stored workload of the storage meter tests (own module: the SDK sandbox re-imports it)."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn
class LedgerWorkflow:
    """Keeps running, its history growing by one event per ``note`` signal, until ``close``."""

    def __init__(self) -> None:
        self._notes: list[str] = []
        self._closed = False

    @workflow.signal
    def note(self, text: str) -> None:
        self._notes.append(text)

    @workflow.signal
    def close(self) -> None:
        self._closed = True

    @workflow.query
    def notes(self) -> int:
        return len(self._notes)

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._closed)
        return len(self._notes)
