"""Signaling service: rooms, joins, JSEP relay to Janus, token auth, placement, metrics."""
