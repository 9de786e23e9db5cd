"""Label-Consistent backdoor (Turner et al. 2019): adversarial target-class images + a corner mark.

Clean-label: only target-class images are poisoned and their labels are kept.

1. A clean model: the run's architecture, width and noise, trained on the clean dataset with the
   run's recipe (`clean_epochs` overrides the epochs). It is cached under
   `ctx.cache_dir/lc-clean-<dataset>-<arch>-w<width>-s<seed>-e<epochs>-<hash>.pt`, keyed by the
   data (content hash), architecture, width, noise, seed and recipe, so every LC run with the
   same setting reuses it. `clean_checkpoint = "path"` uses your own model instead: a
   `torch.save`d state_dict of the run's architecture (or one of these cache files).
2. PGD, untargeted (maximise the cross-entropy of the true label), on float NCHW [0, 1] images:
   L2 with eps 300/255, step 1.5/255, 100 steps, random start (uniform in the ball); the update
   is the L2-normalised gradient, then projection onto the ball and [0, 1]. `variant = "linf"`:
   L-infinity, eps 8/255, step 2/255 (signed gradient). The model is the clean NoisyNet in eval
   mode with its noise active, as every network here is: each PGD step sees a fresh noise draw
   (expectation over transformation with `eot` draws per step, default 1). PGD runs lazily in
   `poison_train`, on exactly the images handed to it, under its own seeded torch RNG.
   The adversarial image is rounded to uint8; an image whose rounded perturbation would leave
   the eps-ball gets its perturbation truncated towards zero instead, so it stays inside.
3. The 3 x 3 pattern [[0,1,0],[1,0,1],[0,1,0]] in all four corners, added to every channel as
   +amplitude where the pattern is 1 and -amplitude where it is 0, then clipped: amplitude 64/255
   in training, 1.0 at test (which stamps the exact black-and-white pattern).

Which images: `poison_rate` is a share of the target class. Variants (docs/method.md §4, attack table):
`authors` (default): the *first* floor(p n_t) target-class images (the paper's authors' code);
`linf` (the L-infinity threat model, eps 8/255, step 2/255, authors' index rule). The corner mark
is the same in every reference; BackdoorBench ships precomputed adversarial images instead of
running PGD, so it has no variant here (its index rule, a random round(...) of the target class,
is `index = "random-round"`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, AttackContext, AttackOptions, to_float, to_uint8
from ibtui.errors import SpecError
from ibtui.files import atomic_write
from ibtui.schema import Int, Num, SchemaField

if TYPE_CHECKING:
    import torch

PATTERN = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint8)


def corner_sign_map(size: int = 32, pattern: np.ndarray = PATTERN) -> np.ndarray:
    """(size, size) int8: +1 where a corner pattern pixel is 1, -1 where it is 0, 0 elsewhere."""
    k = pattern.shape[0]
    signs = 2 * pattern.astype(np.int8) - 1
    m = np.zeros((size, size), dtype=np.int8)
    for rows in (slice(0, k), slice(size - k, size)):
        for cols in (slice(0, k), slice(size - k, size)):
            m[rows, cols] = signs
    return m


def stamp_corners(x: np.ndarray, amplitude: float) -> np.ndarray:
    """Add the four-corner pattern with +-amplitude (fraction of 255) and clip."""
    sign = corner_sign_map(x.shape[1]).astype(np.float64)[None, :, :, None]
    return to_uint8(to_float(x) + amplitude * sign)


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.data)
    return h.hexdigest()


def atomic_torch_save(obj, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f), mode=0o644)


@register
class LabelConsistent(Attack):
    name = "lc"
    title = "LC"
    label_mode = "clean"
    description = "PGD-L2 (eps 300/255) on target-class images + 4-corner mark (64/255), labels kept"
    variants = {"linf": {"norm": "linf", "eps": 8 / 255, "step": 2 / 255}}

    class Options(AttackOptions):
        norm: Annotated[Literal["l2", "linf"], SchemaField(description="PGD threat model")] = "l2"
        eps: Annotated[Num, SchemaField(ge=0, le=64, allow_inf_nan=False,
                                        description="PGD radius ([0,1] scale)")] = 300 / 255
        step: Annotated[Num, SchemaField(ge=0, le=64, allow_inf_nan=False,
                                         description="PGD step size ([0,1] scale)")] = 1.5 / 255
        steps: Annotated[Int, SchemaField(ge=0, le=100_000, description="PGD steps")] = 100
        random_start: Annotated[bool, SchemaField(
            description="start PGD at a random point of the ball")] = True
        eot: Annotated[Int, SchemaField(ge=1, le=1000,
                                        description="noise draws averaged per PGD step")] = 1
        pgd_batch: Annotated[Int, SchemaField(ge=1, le=1_000_000,
                                              description="images per PGD batch")] = 256
        amplitude: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "corner mark amplitude in training ([0,1] scale)"))] = 64 / 255
        test_amplitude: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
            "corner mark amplitude at test"))] = 1.0
        clean_epochs: Annotated[Int, SchemaField(ge=0, le=100_000, description=(
            "epochs of the clean model (0 = the run's epochs)"))] = 0
        clean_checkpoint: Annotated[str, SchemaField(description=(
            "your own clean model (state_dict file); '' = train and cache"))] = ""

    @classmethod
    def check(cls, opts: dict) -> None:
        user = opts["clean_checkpoint"]
        if user:
            path = Path(user).expanduser()
            if not path.exists():
                raise SpecError(f"attack_options.clean_checkpoint: file {path} does not exist; "
                                "allowed: '' (train and cache a clean model) or the path of a "
                                "torch.save'd state_dict")
            if not path.is_file():
                raise SpecError(f"attack_options.clean_checkpoint: {path} is not a file; "
                                "allowed: '' (train and cache a clean model) or the path of a "
                                "torch.save'd state_dict")
            import zipfile

            if not zipfile.is_zipfile(path):  # what torch.save writes (since torch 1.6)
                raise SpecError(f"attack_options.clean_checkpoint: {path} is not a torch.save "
                                "file; allowed: '' (train and cache a clean model) or the path "
                                "of a torch.save'd state_dict")
            opts["clean_checkpoint"] = str(path.resolve())  # resume works from anywhere

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        self.model: torch.nn.Module | None = None
        self.ctx: AttackContext | None = None
        self.device = "cpu"
        self.checkpoint_path: Path | None = None
        self.last_adv = np.zeros((0, 32, 32, 3), dtype=np.uint8)  # PGD output, before the mark
        self.adv_delta = np.zeros((0, 32, 32, 3), dtype=np.int16)

    # --- the clean model --------------------------------------------------------------------
    def cache_key(self, ctx: AttackContext) -> tuple[dict, Path]:
        ds = ctx.dataset
        epochs = self.opts["clean_epochs"] or int(ctx.recipe.get("epochs", 120))
        key = {
            "version": 1, "dataset": ds.name,
            "data": _fingerprint(ds.x_train, ds.y_train, ds.x_test, ds.y_test),
            "arch": ctx.arch, "width": int(ctx.width), "num_classes": self.num_classes,
            "noise_xt": float(ctx.noise_xt), "noise_ty": float(ctx.noise_ty),
            "seed": int(ctx.seed), "epochs": int(epochs),
            "lr": float(ctx.recipe.get("lr", 0.01)),
            "batch_size": int(ctx.recipe.get("batch_size", 256)),
        }
        digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=6).hexdigest()
        name = f"lc-clean-{ds.name}-{ctx.arch}-w{ctx.width}-s{ctx.seed}-e{epochs}-{digest}.pt"
        return key, Path(ctx.cache_dir) / name

    def _build(self, meta: dict, ctx: AttackContext) -> torch.nn.Module:
        from ibtui.models import create_model

        return create_model(meta.get("arch", ctx.arch), int(meta.get("num_classes", self.num_classes)),
                            int(meta.get("width", ctx.width)), float(meta.get("noise_xt", ctx.noise_xt)),
                            float(meta.get("noise_ty", ctx.noise_ty)))

    def _load(self, path: Path, ctx: AttackContext, field: str | None) -> torch.nn.Module:
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - reported with the option's name
            if field is None:
                raise
            raise SpecError(f"attack_options.{field}: cannot load {path} as a state_dict "
                            f"({type(e).__name__}: {e}); save one with torch.save(model.state_dict())"
                            ) from e
        meta = obj.get("meta", {}) if isinstance(obj, dict) else {}
        state = obj
        if isinstance(obj, dict):
            for k in ("state_dict", "model"):
                if isinstance(obj.get(k), dict):
                    state = obj[k]
                    break
        model = self._build(meta, ctx)
        try:
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001
            if field is None:
                raise
            raise SpecError(f"attack_options.{field}: {path} does not fit {ctx.arch} width "
                            f"{ctx.width} ({e})") from e
        return model

    def prepare(self, ctx: AttackContext) -> None:
        import torch

        self.ctx = ctx
        self.device = torch.device(ctx.device)
        user = self.opts["clean_checkpoint"]
        if user:
            path = Path(user).expanduser()
            if not path.is_file():
                raise SpecError(f"attack_options.clean_checkpoint: file {path} does not exist")
            model = self._load(path, ctx, "clean_checkpoint")
        else:
            key, path = self.cache_key(ctx)
            model = None
            if path.is_file():
                try:
                    model = self._load(path, ctx, None)
                except Exception:  # noqa: BLE001 - a damaged cache entry is retrained
                    model = None
            if model is None:
                from ibtui.train import train_clean_model

                ds = ctx.dataset
                model = train_clean_model(
                    ds.x_train, ds.y_train, ds.x_test, ds.y_test, arch=ctx.arch, width=ctx.width,
                    noise_xt=ctx.noise_xt, noise_ty=ctx.noise_ty, epochs=key["epochs"],
                    lr=key["lr"], batch_size=key["batch_size"], seed=ctx.seed, device=ctx.device,
                    progress=lambda f: ctx.progress("lc: clean model", f))
                meta = {k: key[k] for k in ("arch", "width", "num_classes", "noise_xt", "noise_ty")}
                meta["key"] = json.dumps(key, sort_keys=True)
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                atomic_torch_save({"state_dict": state, "meta": meta}, path)
        ctx.progress("lc: clean model", 1.0)
        self.checkpoint_path = path
        self.set_model(model)

    def set_model(self, model: torch.nn.Module, device: str | torch.device | None = None) -> None:
        """Use `model` (a NoisyNet) as PGD's source model; `prepare` calls this."""
        import torch

        self.device = torch.device(device if device is not None else self.device)
        model = model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model

    # --- PGD ------------------------------------------------------------------------------
    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        import torch

        eps = self.opts["eps"]
        if self.opts["norm"] == "linf":
            return delta.clamp(-eps, eps)
        norms = delta.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        return delta * torch.clamp(eps / norms, max=1.0)

    def _random_start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        import torch

        eps = self.opts["eps"]
        if self.opts["norm"] == "linf":
            u = torch.rand(x.shape, generator=gen, device=x.device)
            return (2 * u - 1) * eps
        d = x[0].numel()
        g = torch.randn(x.shape, generator=gen, device=x.device)
        g = g / g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        r = torch.rand(len(x), generator=gen, device=x.device) ** (1.0 / d)
        return g * (eps * r).view(-1, 1, 1, 1)

    def pgd(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Untargeted PGD on uint8 NHWC images; returns float32 NHWC adversarial images in [0, 1]."""
        import torch
        import torch.nn.functional as F

        if self.model is None:
            raise RuntimeError("lc: prepare(ctx) (or set_model) must run before poison_train")
        o = self.opts
        steps, bs, eot = o["steps"], o["pgd_batch"], o["eot"]
        dev = self.device
        seed = int(self.rng.integers(2**62))
        nb = max(1, -(-len(x) // bs))
        out = np.empty(x.shape, dtype=np.float32)
        devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            gen = torch.Generator(device=dev).manual_seed(seed)
            for b in range(nb):
                sl = slice(b * bs, (b + 1) * bs)
                x0 = torch.from_numpy(to_float(x[sl])).float().permute(0, 3, 1, 2).contiguous().to(dev)
                yb = torch.from_numpy(np.asarray(y[sl], dtype=np.int64)).to(dev)
                delta = self._random_start(x0, gen) if o["random_start"] else torch.zeros_like(x0)
                delta = (x0 + self._project(delta)).clamp(0, 1) - x0
                for s in range(steps):
                    delta.requires_grad_(True)
                    loss = sum(F.cross_entropy(self.model(x0 + delta), yb, reduction="sum")
                               for _ in range(eot))
                    (grad,) = torch.autograd.grad(loss, delta)
                    with torch.no_grad():
                        if o["norm"] == "linf":
                            upd = grad.sign()
                        else:
                            gn = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
                            upd = grad / gn
                        delta = self._project(delta + o["step"] * upd)
                        delta = (x0 + delta).clamp(0, 1) - x0
                    if self.ctx is not None:
                        self.ctx.progress("lc: pgd", (b * steps + s + 1) / (nb * steps))
                out[sl] = (x0 + delta.detach()).permute(0, 2, 3, 1).cpu().numpy()
        return out

    def quantise(self, x: np.ndarray, adv: np.ndarray) -> np.ndarray:
        """Round the adversarial images to uint8, staying inside the eps-ball (see module doc)."""
        delta = adv.astype(np.float64) * 255.0 - x.astype(np.float64)
        rounded = np.round(delta)
        flat = rounded.reshape(len(x), -1) / 255.0
        if self.opts["norm"] == "linf":
            norms = np.abs(flat).max(axis=1) if flat.size else np.zeros(len(x))
        else:
            norms = np.linalg.norm(flat, axis=1)
        over = norms > self.opts["eps"] + 1e-9
        rounded[over] = np.trunc(delta[over])
        return np.clip(x.astype(np.int16) + rounded.astype(np.int16), 0, 255).astype(np.uint8)

    # --- the attack -----------------------------------------------------------------------
    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if np.any(y != self.target):
            raise ValueError("lc is a clean-label attack: poison_train takes target-class images only")
        if len(x) == 0:
            return x.copy(), y.copy()
        adv = self.quantise(x, self.pgd(x, y)) if self.opts["steps"] > 0 or self.opts["random_start"] \
            else x.copy()
        self.last_adv = adv
        self.adv_delta = adv.astype(np.int16) - x.astype(np.int16)
        return stamp_corners(adv, self.opts["amplitude"]), y.copy()

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        return stamp_corners(x, self.opts["test_amplitude"])

    def artifacts(self) -> dict[str, np.ndarray]:
        return {"lc_pattern": PATTERN, "lc_corner_signs": corner_sign_map(),
                "lc_adv_delta": self.adv_delta}
