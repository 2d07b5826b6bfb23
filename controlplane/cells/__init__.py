"""The control plane's record of cells (which account runs where)."""
