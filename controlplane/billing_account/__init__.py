"""An account's billing set-up: its plan over time and its prepaid credits."""
