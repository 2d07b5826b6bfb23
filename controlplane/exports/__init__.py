"""Exports: each account's S3 sink, and the exporter that writes usage hourly and invoices on
finalization."""
