"""Server-side recordings seen from the application (the recorder itself is in `sfu`).

- `control`: start and stop (on any worker of a deployment), who may, telling the meeting;
- `manifest`: the rows the recorder's tracks and speaker changes become, names included;
- `commands`: what one worker asks another about a recording (stop it, take it over);
- `handover`: a worker leaving stops its recordings and another worker continues them;
- `jobs`: composition (in its own process), crash recovery, retention;
- `lifecycle`: the states a recording goes through, and the only code that changes them.
"""
