"""One run end to end: data -> poison -> train -> class-wise MI -> stealth score.

Called by the worker process (ibtui.worker) with the run directory; it is the only writer of
that directory. Work survives a kill: every finished epoch is a flushed line in metrics.jsonl,
every MI estimate a line in mi.jsonl, and checkpoint.pt (written atomically after each epoch,
once its MI is done) lets `ibtui resume` continue without duplicates or gaps.

The steps, each in its own module, in the order a run takes them:
  prepare.py     dataset -> attack -> poisoned data and subsets (artifacts/)
  run.py         the training loop (Experiment.run reads top to bottom)
  measure.py     MI and representation statistics at a checkpoint epoch
  checkpoint.py  save / resume
  summary.py     summary.json: stealth score, sanity checks, timing, runtime
"""

from ibtui.experiment.control import RunFailed, Stop
from ibtui.experiment.run import Experiment

__all__ = ["Experiment", "RunFailed", "Stop"]
