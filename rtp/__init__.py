"""Media plumbing shared by the server (`sfu`) and the clients (`client`, load bots): the
aiortc seam and what can be known about RTP without decoding it.

- `aiortc_hooks`: the one module that touches aiortc's private API (with its self-check);
- `repair`: how much NACK repair a sender may spend;
- `codecs`: keyframes, frame starts and frame sizes read from encoded payloads;
- `framing`: encoded frames re-assembled from depayloaded packets;
- `probe`: a receiver that counts and checks frames without decoding (tests, bots);
- `synthetic`: pre-encoded clips sent in real time without an encoder (tests, bots);
- `types`: the media vocabulary (sources, kinds, receive slots).

Nothing here knows HTTP, signaling or rooms.
"""
