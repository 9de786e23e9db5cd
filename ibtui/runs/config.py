"""A run's configuration: everything in its spec but the seed (and launch details that do not
change the science). Runs of one configuration are replicas (ibtui.analysis.replicas). Here,
below the runs store, because the store keeps each run's configuration key in its index."""

from __future__ import annotations

import hashlib
import json

NOT_SCIENCE = ("seed", "threads", "device", "data_root", "download", "min_asr", "min_asr_reason")


def _no_none(v):
    """TOML has no null: a resolved spec's None options are absent from its spec.toml."""
    if isinstance(v, dict):
        return {k: _no_none(x) for k, x in v.items() if x is not None}
    return v


def config_key(spec: dict) -> str:
    """A short stable id of everything but the seed (and launch details); the same for a
    resolved spec and the spec.toml written from it."""
    core = {k: _no_none(v) for k, v in sorted(spec.items())
            if k not in NOT_SCIENCE and v is not None}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:10]
