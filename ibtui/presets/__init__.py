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
