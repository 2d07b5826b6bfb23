"""SCIM 2.0 provisioning (RFC 7643/7644) per account: ``/scim/v2`` for identity providers."""
