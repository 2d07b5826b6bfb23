"""Routing entries the gateway reads: namespace → cell address, accepted client CAs and
certificate filters."""
