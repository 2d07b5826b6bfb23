"""Async operations: the generic record of a data-plane change (state, failure reason, audit),
its API and the starter of the workflow that performs it on the system cell. The workflows
themselves live with their domain (``controlplane.namespaces.workflows``)."""
