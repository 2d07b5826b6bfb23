"""Append-only audit log of control-plane mutations."""
