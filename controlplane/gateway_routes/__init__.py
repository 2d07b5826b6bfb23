"""Routing entries the gateway reads: namespace → cell address and accepted client CAs."""
