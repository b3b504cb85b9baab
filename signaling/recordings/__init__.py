"""Server-side recordings seen from the application (the recorder itself is in `sfu`).

- `control`: start and stop, who may, the manifest, telling the meeting;
- `jobs`: composition (in its own process), crash recovery, retention;
- `lifecycle`: the states a recording goes through, and the only code that changes them.
"""
