"""A gallery of every attack on one dataset: a matplotlib PNG for a paper.

One row per attack: the clean training image, its poisoned training version, the difference
|x' - x| amplified AMPLIFY times (per channel, clipped at 255) and the test-time trigger. The
row's caption gives PSNR and SSIM of the poisoned training images against their originals,
averaged over the images the run's index rule would poison (dirty-label: 10 % of the training
set; LC: 25 % of the target class, at most LC_QUICK_IMAGES of them in quick mode).

Rows are attacks, or attack variants: `attacks` takes names ("blend"), "name:variant"
("blend:backdoorbench") or "name:*" (every named variant of that attack), so
`ibtui attacks gallery --attack "blend:*" --attack wanet:backdoorbench` works as it is. The
variant's name is printed under every picture of its row ("default = authors" for the default).

LC quick path (default): the clean source model is a ResNet-18 of width 16 trained for 2 epochs
(lr 0.05, batch 64) instead of the run's recipe, cached like any LC clean model; PGD itself is
the full 100-step L2 attack. The figure says so. `lc_quick=False` uses the paper's recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibtui.data.attacks import ATTACKS, create_attack, paper_rank
from ibtui.data.attacks.base import AttackContext
from ibtui.data.datasets import Dataset, load_dataset
from ibtui.data.poison import select_poison_indices
from ibtui.data.quality import psnr, ssim

AMPLIFY = 10
DIRTY_RATE, CLEAN_RATE = 0.1, 0.25
LC_QUICK = {"width": 16, "epochs": 2, "lr": 0.05, "batch_size": 64}
LC_QUICK_IMAGES = 6


def attack_order(attacks: list[str] | None = None) -> list[str]:
    if attacks is not None:
        return list(attacks)
    # "none" (the clean reference) has no trigger to draw
    return sorted((a for a in ATTACKS if a != "none"), key=paper_rank)


def expand_rows(attacks: list[str] | None = None) -> list[tuple[str, str | None]]:
    """(attack, variant or None for the default) per row, from names, "name:variant", "name:*"."""
    from ibtui.errors import SpecError

    rows: list[tuple[str, str | None]] = []
    for item in attack_order(attacks):
        name, _, variant = item.partition(":")
        if name not in ATTACKS:
            raise SpecError(f"--attack {item!r}: unknown attack {name!r}; allowed: "
                            f"{', '.join(sorted(ATTACKS))}")
        if variant == "*":
            rows += [(name, v) for v in ATTACKS[name].variants]
        elif variant:
            if variant not in ATTACKS[name].variants and variant != "default":
                raise SpecError(f"--attack {item!r}: {variant!r} is not a {name} variant; allowed: "
                                f"{', '.join(['default', *ATTACKS[name].variants])}")
            rows.append((name, variant))
        else:
            rows.append((name, None))
    return rows


def variant_label(name: str, variant: str | None) -> str:
    """The name printed under a row's pictures."""
    if variant in (None, "default"):
        return "default = authors" if "authors" in ATTACKS[name].variants else "default"
    return variant


def poison_examples(ds: Dataset, name: str, *, seed: int = 0, target: int = 0,
                    options: dict | None = None, lc_quick: bool = True,
                    cache_dir: Path = Path("runs/.cache")) -> dict:
    """Poison the images the index rule selects; returns clean/poisoned/test arrays and a note."""
    attack = create_attack(name, options or {}, target=target, seed=seed,
                           num_classes=ds.num_classes)
    clean_label = attack.label_mode == "clean"
    rate = attack.selection_rate(CLEAN_RATE if clean_label else DIRTY_RATE)
    idx = select_poison_indices(ds.y_train, rate, target, attack.label_mode, ds.num_classes,
                                rule=attack.opts["index"], seed=seed)
    note = ""
    if name == "lc":
        recipe = {"lr": 0.01, "batch_size": 256, "epochs": 120}
        width = 64
        if lc_quick:
            recipe = {k: LC_QUICK[k] for k in ("lr", "batch_size", "epochs")}
            width = LC_QUICK["width"]
            idx = idx[-LC_QUICK_IMAGES:]
            note = (f"quick: clean ResNet-18 w{width}, {recipe['epochs']} epochs; "
                    f"{len(idx)} images")
        ctx = AttackContext(dataset=ds, width=width, seed=seed, recipe=recipe, cache_dir=cache_dir)
        attack.prepare(ctx)
    else:
        attack.prepare(AttackContext(dataset=ds, seed=seed, cache_dir=cache_dir))
    clean = ds.x_train[idx]
    poisoned, labels = attack.poison_train(clean, ds.y_train[idx])
    # show a non-target image where there is one (dirty-label), else the first
    show = int(np.flatnonzero(ds.y_train[idx] != target)[0]) if not clean_label and \
        np.any(ds.y_train[idx] != target) else 0
    return {"name": name, "clean": clean, "poisoned": poisoned, "labels": labels,
            "test": attack.trigger_test(clean[show:show + 1])[0], "show": show,
            "psnr": psnr(clean, poisoned), "ssim": ssim(clean, poisoned), "n": len(idx),
            "note": note, "variant": variant_label(name, attack.opts["variant"])}


def make_gallery(dataset: str = "digits", out: Path | str | None = None,
                 attacks: list[str] | None = None, seed: int = 0, root=None, *,
                 lc_quick: bool = True, cache_dir: Path | str = Path("runs/.cache"),
                 dpi: int = 200) -> Path:
    """Draw the gallery PNG; returns its path (default ./gallery-<dataset>.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out) if out is not None else Path(f"gallery-{dataset}.png")
    ds = load_dataset(dataset, root)
    rows = [poison_examples(ds, n, seed=seed, lc_quick=lc_quick, cache_dir=Path(cache_dir),
                            options={"variant": v} if v else None)
            for n, v in expand_rows(attacks)]

    cols = ["clean", "poisoned (train)", f"|difference| x{AMPLIFY}", "test trigger"]
    fig, axes = plt.subplots(len(rows), 4, figsize=(6.4, 1.36 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        i = row["show"]
        x, p = row["clean"][i], row["poisoned"][i]
        diff = np.clip(np.abs(p.astype(np.int16) - x.astype(np.int16)) * AMPLIFY, 0, 255)
        for c, img in enumerate([x, p, diff.astype(np.uint8), row["test"]]):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(row["variant"], fontsize=6, labelpad=1)
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        label = f"{row['name']}\nPSNR {row['psnr']:.1f} dB\nSSIM {row['ssim']:.3f}"
        if row["note"]:
            label += "\n(" + row["note"].replace("; ", ")\n(") + ")"
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center",
                              labelpad=6)
    fig.suptitle(f"Backdoor triggers on {dataset} (target class 0, seed {seed})", fontsize=9)
    fig.text(0.5, 0.005,
             f"PSNR/SSIM: mean over the poisoned training images (dirty-label: {DIRTY_RATE:.0%} of "
             f"the set; LC: {CLEAN_RATE:.0%} of the target class). Difference amplified "
             f"x{AMPLIFY}, clipped.", ha="center", va="bottom", fontsize=6)
    fig.tight_layout(rect=(0.0, 0.02, 1.0, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
