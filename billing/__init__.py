"""Metering and billing: usage from the cells, price book, invoices, exports (not built yet)."""
