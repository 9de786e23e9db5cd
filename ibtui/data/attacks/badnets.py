"""BadNets (Gu et al. 2017): a solid patch stamped on the image (pixels replaced).

Variants (docs/method.md §4, attack table): `authors` (default: red 5 x 5 patch in the top-left corner, the
authors' index rule) and `backdoorbench` (white 3 x 3 patch in the bottom-right corner, a
uniformly random round(p N) of the training set). The original BadNets code has no 32 x 32 RGB
setting to compare with.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, RelabelOptions
from ibtui.schema import Int, SchemaField

COLOURS = {"red": (255, 0, 0), "white": (255, 255, 255), "black": (0, 0, 0)}


@register
class BadNets(Attack):
    name = "badnets"
    title = "BadNets"
    description = "solid patch in a corner (authors: red 5x5 top-left)"
    variants = {"backdoorbench": {"size": 3, "colour": "white", "corner": "bottom-right",
                                  "index": "random-round"}}

    class Options(RelabelOptions):
        size: Annotated[Int, SchemaField(ge=1, le=32, description="patch side in pixels")] = 5
        colour: Annotated[Literal[tuple(COLOURS)], SchemaField(description="patch colour")] = "red"
        corner: Annotated[Literal["top-left", "top-right", "bottom-left", "bottom-right"],
                          SchemaField(description="where the patch goes")] = "top-left"

    def _slices(self, h: int, w: int) -> tuple[slice, slice]:
        s = self.opts["size"]
        corner = self.opts["corner"]
        rows = slice(0, s) if corner.startswith("top") else slice(h - s, h)
        cols = slice(0, s) if corner.endswith("left") else slice(w - s, w)
        return rows, cols

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        rows, cols = self._slices(x.shape[1], x.shape[2])
        out[:, rows, cols, :] = np.array(COLOURS[self.opts["colour"]], dtype=np.uint8)
        return out

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.trigger_test(x), np.full_like(y, self.target)

    def artifacts(self) -> dict[str, np.ndarray]:
        mask = np.zeros((32, 32), dtype=np.uint8)
        rows, cols = self._slices(32, 32)
        mask[rows, cols] = 1
        return {"badnets_mask": mask}
