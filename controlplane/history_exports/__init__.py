"""Workflow history export: each namespace's S3 sink, and the job that writes every closed
run's history there (Temporal's ``temporal.api.history.v1.History`` protobuf)."""
