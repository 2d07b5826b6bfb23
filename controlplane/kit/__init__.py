"""Helpers shared by every control-plane domain."""
