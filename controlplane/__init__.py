"""The Stratus control plane: admin API, CLI and client, database, async operations, audit."""
