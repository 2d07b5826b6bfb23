"""Invoices: monthly rating of each account's usage, finalization after a grace period,
credit notes, and the invoice API."""
