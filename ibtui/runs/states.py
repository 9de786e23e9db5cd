"""The states a run can be in (status.json "state"); shared by the store and the board."""

STATES = ("queued", "running", "done", "failed", "crashed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled")  # a worker ended it; nothing will change it
