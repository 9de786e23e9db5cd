"""Nothing below ibtui/tui imports Textual: `ibtui run` works with the TUI stack absent."""

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('textual', 'textual_plotext', 'plotext'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import ibtui.cli, ibtui.experiment, ibtui.worker, ibtui.runs.scheduler, ibtui.mi
import ibtui.analysis.stealth, ibtui.data.attacks, ibtui.models
from ibtui.cli import app
sys.argv = ['ibtui', 'run', sys.argv[1], '--dry-run', '--runs-dir', sys.argv[2]]
app()
"""


def test_core_runs_without_textual(tmp_path):
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-c", CODE, str(root / "experiments.toml"),
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "runs from" in r.stdout


def test_no_textual_import_outside_tui():
    root = Path(__file__).resolve().parent.parent / "ibtui"
    offenders = []
    for p in root.rglob("*.py"):
        if "tui" in p.relative_to(root).parts[:1]:
            continue
        for line in p.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import textual", "from textual", "import plotext", "from plotext")):
                offenders.append(f"{p}: {s}")
    assert not offenders, offenders
