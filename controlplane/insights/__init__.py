"""Workload insights: findings about a namespace's workload, computed from what its cell records
(events, task-queue state, metrics) without ever seeing the tenant's code.

``findings`` holds the vocabulary (what a finding is); ``analysis`` gathers the evidence from a
cell and runs the detectors, pure functions over that evidence; the rest stores findings, runs
the durable job per namespace on the system cluster and serves them (API, CLI, console).
"""
