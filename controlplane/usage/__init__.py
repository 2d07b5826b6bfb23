"""Usage: what each namespace of an account consumed, per UTC day and billable kind."""
