"""Load bots: `tertulia loadtest` and the capacity benchmark (`bench/capacity.py`).

K bots join a meeting through the documented protocol, each publishing a pre-encoded VP8 +
Opus clip (no encoder) and receiving everyone else without decoding. They run in worker
processes (`worker.py`), never in the server's; `runner.py` coordinates them, `report.py`
turns their counters into the report described in docs/loadtest.md.
"""
