"""Accounts (tenants) and their owners."""
