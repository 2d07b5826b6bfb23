"""Read-only views of a namespace's workflows, fetched from its cell as the gateway would."""
