"""A Python client for Tertulia's signaling protocol (docs/protocol.md) and media.

Used by the tests and by load bots; it speaks only the documented protocol.
"""
