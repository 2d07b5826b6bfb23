"""The data plane: cells (isolated Temporal clusters) and the gateway in front of them."""
