"""The paper's experiments as named presets: `ibtui run --preset NAME`, listed by `ibtui presets`.

Each preset is an experiments.toml file in this package whose first line is
`# description: <what it runs and its expected compute>`.
"""

from __future__ import annotations

from pathlib import Path

from ibtui.errors import SpecError

PRESETS_DIR = Path(__file__).resolve().parent
_PREFIX = "# description:"


def _files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.toml"))}


def _description(path: Path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
    except OSError:
        return ""
    return first[len(_PREFIX):].strip() if first.startswith(_PREFIX) else ""


def list_presets() -> list[tuple[str, str]]:
    """[(name, description)] of every preset, sorted by name."""
    return [(name, _description(p)) for name, p in _files().items()]


def preset_path(name: str) -> Path:
    """The experiments.toml of a preset. Raises SpecError naming the allowed presets."""
    files = _files()
    if name not in files:
        raise SpecError(f"unknown preset {name!r}; allowed: {', '.join(files) or '(none)'}")
    return files[name]


def preset_text(name: str) -> str:
    """A preset as an experiments.toml to copy, edit and run (`ibtui presets show NAME`): a
    comment naming the preset and how to run the copy, then the preset file as it is (its
    settings and the comments giving each choice's reason)."""
    path = preset_path(name)
    body = path.read_text(encoding="utf-8")
    head = (f"# preset {name}: save as experiments.toml (or any name), edit, then run it with\n"
            f"#   ibtui run experiments.toml      (the same runs as `ibtui run --preset {name}`)\n")
    return head + body if body.endswith("\n") else head + body + "\n"
