"""No attack: the clean reference run. The same recipe on unpoisoned data.

`poison_rate` is ignored (the spec stores 0 for it): no training image is selected, nothing is
relabelled, and the "test trigger" is the identity, so ASR is only the rate at which clean test
images of the other classes are classified as the target class. The target-class subsets are still
built (t_backdoor is empty), so a clean run records the same per-class files as an attacked one and
every attacked run can be compared with it.
"""

from __future__ import annotations

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack


@register
class NoAttack(Attack):
    name = "none"
    title = "none (clean)"
    description = "no attack: the clean reference (poison_rate ignored, stored as 0)"

    def selection_rate(self, rate: float) -> float:
        return 0.0

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.copy(), y.copy()

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        return x.copy()
