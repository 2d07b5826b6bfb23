"""The account's audit log sink: its audit events, hourly, as JSON Lines objects in S3."""
