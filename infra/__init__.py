"""Deployment: supervisor config, Kubernetes manifests, scripts for real test services."""
