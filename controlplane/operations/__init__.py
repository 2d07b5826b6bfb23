"""Async operations: data-plane changes performed by workflows on the system cell."""
