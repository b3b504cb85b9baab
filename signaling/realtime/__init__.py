"""The live side of a meeting: the signaling WebSocket protocol and who is connected.

- `protocol`: limits, error codes, leave reasons, close codes (docs/protocol.md);
- `messages`: what a client may send (strict models); `events`: what the server sends;
- `session`: one participant's socket: handshake, reading, dispatch, leaving;
- `live`: the rooms of connected people and their event queues;
- `limits`: per-connection message rate, sockets waiting to say hello.
"""
