"""Adap-Blend (Qi et al. 2023, "Revisiting the assumption of latent separability").

The blend pattern p (Blend's seeded grey noise by default; the original used an image, none is
shipped here) is cut into `pieces` square pieces (16 = a 4 x 4 grid of 8 x 8 pieces). Every
poisoned training image gets its own random choice of exactly round(pieces * (1 - mask_rate))
kept pieces (8 of 16), a 0/1 pixel mask m. Training images, alpha = 0.15, on the 0-255 scale,
clipped and rounded half up:

- `rule = "authors"` (the paper's authors' code, the default): x' = (1 - alpha) x + alpha (p m):
  the kept pieces are blended, the masked-out pieces are darkened to (1 - alpha) x;
- `rule = "masked"` (Qi et al.'s original): x' = x + alpha m (p - x): the masked-out pieces
  are left untouched.

At test the full pattern is blended with alpha 0.2 (both rules agree when m = 1).

Cover (regularisation) samples carry the same kind of trigger but keep their true label:
- conservatism (cover_rate = 0): of the selected images, floor(conservatism n_c) of every
  class's n_c selected images keep their label (`cover_split = "per-class"`, the authors'
  "half of each class"; which ones within a class is a random choice from the run's seed), or a
  random round(conservatism n) of all of them (`cover_split = "global"`, ibtui before 2026-11);
- cover_rate > 0 (Qi et al.'s setting): the payload is the run's poison rate and cover_rate of
  the training set is added as cover: `selection_rate(p) = p + cover_rate`, and of the selected
  images a random round(n cover_rate / (p + cover_rate)) keep their label. Qi et al. shuffle the
  training set and take floor(p N) payload then floor(cover_rate N) cover images; ibtui takes
  floor((p + cover_rate) N) (index rule "random-floor") and splits them, so the counts can
  differ from theirs by one image.

Variants (docs/method.md §4, attack table): `authors` (default), `original` (Qi et al.: rule "masked",
poison rate as given + cover_rate 0.003, random-floor index rule), `separate` (the authors' rule
with Qi et al.'s separate cover rate 0.003).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator

from ibtui.data.attacks import register
from ibtui.data.attacks.base import RelabelOptions, to_float, to_uint8
from ibtui.data.attacks.blend import PatternAttack
from ibtui.errors import SpecError
from ibtui.schema import Num, SchemaField, integral


@register
class AdapBlend(PatternAttack):
    name = "adap-blend"
    title = "Adap-Blend"
    description = "blend on 8 random of 16 pattern pieces (alpha 0.15), half of them keep labels"
    variants = {"original": {"rule": "masked", "cover_rate": 0.003, "index": "random-floor"},
                "separate": {"cover_rate": 0.003}}

    class Options(RelabelOptions):
        alpha: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "blend weight in training (on the kept pieces)"))] = 0.15
        test_alpha: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "blend weight of the full pattern at test"))] = 0.2
        pieces: Annotated[Literal[1, 4, 16, 64, 256], BeforeValidator(integral), SchemaField(
            description="number of square pieces (a perfect square dividing 32x32)")] = 16
        mask_rate: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "share of the pieces masked per image"))] = 0.5
        conservatism: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "share of the poisoned images that keep their label (cover)"))] = 0.5
        cover_rate: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "if > 0: cover samples as a share of the training set, on top of the payload "
            "(replaces conservatism)"))] = 0.0
        pattern: Annotated[str, SchemaField(
            description="'noise' (Blend's seeded grey noise) or an image path")] = "noise"
        rule: Annotated[Literal["authors", "masked"], SchemaField(description=(
            "blend of the masked pattern: 'authors' = (1 - a) x + a (p m), 'masked' = "
            "x + a m (p - x) (Qi et al.)"))] = "authors"
        cover_split: Annotated[Literal["per-class", "global"], SchemaField(description=(
            "conservatism cover samples: a share of every class ('per-class', authors) or of all "
            "selected images ('global')"))] = "per-class"

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        self.grid = int(math.isqrt(self.opts["pieces"]))
        self.n_keep = int(round(self.opts["pieces"] * (1.0 - self.opts["mask_rate"])))
        self.poison_rate: float | None = None
        self.kept = np.zeros(0, dtype=bool)  # last poison_train: cover samples (label kept)
        self.piece_masks = np.zeros((0, self.grid, self.grid), dtype=np.uint8)

    def selection_rate(self, rate: float) -> float:
        self.poison_rate = float(rate)
        return rate + self.opts["cover_rate"]

    def payload_count(self, n: int) -> int:
        """n less the cover samples (per-class conservatism floors each class's share, so the
        payload there is at least this)."""
        if self.opts["cover_rate"] <= 0 and self.opts["cover_split"] == "per-class":
            return n - int(self.opts["conservatism"] * n + 1e-9)
        return n - self._cover_count(n)

    def _cover_count(self, n: int) -> int:
        cover = self.opts["cover_rate"]
        if cover <= 0:
            return int(round(self.opts["conservatism"] * n))
        if self.poison_rate is None:
            raise SpecError("attack_options.cover_rate: the payload share needs the run's poison "
                            "rate; call selection_rate(rate) before poison_train")
        return int(round(n * cover / (self.poison_rate + cover)))

    def random_piece_masks(self, n: int) -> np.ndarray:
        """(n, g, g) uint8: exactly n_keep ones (kept pieces) per image, chosen at random."""
        p = self.opts["pieces"]
        order = np.argsort(self.rng.random((n, p)), axis=1)
        masks = np.zeros((n, p), dtype=np.uint8)
        np.put_along_axis(masks, order[:, :self.n_keep], 1, axis=1)
        return masks.reshape(n, self.grid, self.grid)

    def blend_masked(self, x: np.ndarray, pixel_mask: np.ndarray, alpha: float) -> np.ndarray:
        """The training blend with (N, H, W) 0/1 masks, by `rule` (module doc)."""
        if self.opts["rule"] == "masked":
            return self.blend(x, alpha * pixel_mask)
        m = pixel_mask[..., None].astype(np.float64)
        return to_uint8((1.0 - alpha) * to_float(x) + alpha * to_float(self.pattern)[None] * m)

    def _cover_mask(self, y: np.ndarray) -> np.ndarray:
        n = len(y)
        kept = np.zeros(n, dtype=bool)
        if self.opts["cover_rate"] <= 0 and self.opts["cover_split"] == "per-class":
            share = self.opts["conservatism"]
            for c in np.unique(y):
                members = np.flatnonzero(y == c)
                k = int(share * len(members) + 1e-9)
                kept[self.rng.permutation(members)[:k]] = True
            return kept
        kept[self.rng.permutation(n)[:self._cover_count(n)]] = True
        return kept

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        masks = self.random_piece_masks(n)
        side = x.shape[1] // self.grid
        pixel_mask = np.kron(masks, np.ones((side, side), dtype=np.uint8))
        out = self.blend_masked(x, pixel_mask, self.opts["alpha"])
        kept = self._cover_mask(np.asarray(y))
        self.kept, self.piece_masks = kept, masks
        return out, np.where(kept, y, self.target).astype(y.dtype)

    def artifacts(self) -> dict[str, np.ndarray]:
        return {"adap_blend_pattern": self.pattern,
                "adap_blend_piece_masks": self.piece_masks,
                "adap_blend_cover_mask": self.kept}
