"""Resumable state: checkpoint.pt after every finished epoch (atomic), and on resume the logs cut
back to what that checkpoint contains, so a killed run continues without duplicates or gaps."""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ibtui.experiment.control import RunFailed
from ibtui.runs.store import atomic_write_bytes, read_jsonl

CHECKPOINT_VERSION = 1
# the worker.log line a resumed run starts its training with (the app draws it as a separator)
RESUMED_LINE = "[worker] ── resumed from epoch {epoch} (its checkpoint) ──"


def save_checkpoint(run_dir: Path, epoch: int, model, opt, sched, gen: torch.Generator) -> None:
    state = {
        "version": CHECKPOINT_VERSION, "epoch": epoch, "model": model.state_dict(),
        "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(run_dir / "checkpoint.pt", buf.getvalue())


def resume_checkpoint(run_dir: Path, model, opt, sched, gen: torch.Generator,
                      device: torch.device) -> int:
    """Load checkpoint.pt if present; return the last finished epoch (0 for a fresh run).
    Lines logged after that epoch (a kill between log and checkpoint) are dropped."""
    path = run_dir / "checkpoint.pt"
    last = 0
    if path.exists():
        try:
            state = torch.load(path, map_location=device, weights_only=False)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
            raise RunFailed(f"checkpoint.pt unreadable ({e}); delete it to restart the run") from None
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise RunFailed(f"checkpoint.pt is from an incompatible version "
                            f"({state.get('version') if isinstance(state, dict) else '?'}, "
                            f"expected {CHECKPOINT_VERSION}); delete it to restart the run")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        last = int(state["epoch"])
        # worker.log is appended to by every attempt: mark where this one continues, whoever
        # resumed it (the app, `ibtui resume`, a Slurm requeue)
        print(RESUMED_LINE.format(epoch=last), flush=True)
    truncate_after(run_dir, last)
    return last


def truncate_after(run_dir: Path, epoch: int) -> None:
    # MI lines of the epoch after the checkpoint are kept: that checkpoint's estimates
    # are reused by the MI step instead of being redone.
    for name, keep in (("metrics.jsonl", epoch), ("mi.jsonl", epoch + 1),
                       ("clusters.jsonl", epoch)):
        p = run_dir / name
        if not p.exists():
            continue
        recs = read_jsonl(p)
        kept = [r for r in recs if int(r.get("epoch", 0)) <= keep]
        raw = p.read_bytes()
        if len(kept) != len(recs) or (raw and not raw.endswith(b"\n")):
            text = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write_bytes(p, text.encode())
