"""Nothing below ibtui/tui imports Textual: `ibtui run` works with the TUI stack absent, and reads
a spec without torch. The import graph points down the layers, without cycles."""

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
from ibtui.cli import app
sys.argv = ['ibtui', 'run', sys.argv[1], '--dry-run', '--runs-dir', sys.argv[2]]
try:
    app()
except SystemExit as e:
    assert not e.code, e.code
heavy = sorted({'torch', 'scipy', 'sklearn'} & set(sys.modules))
assert not heavy, 'ibtui run --dry-run imported ' + ', '.join(heavy)
import ibtui.cli, ibtui.experiment, ibtui.worker, ibtui.runs.scheduler, ibtui.mi
import ibtui.analysis.stealth, ibtui.data.attacks, ibtui.models
"""


def test_core_runs_without_textual_and_reads_a_spec_without_torch(tmp_path):
    """With Textual unimportable, `ibtui run --dry-run` of the default file works and the core
    modules import. The dry-run checks the spec against every registry (datasets,
    architectures, attacks, MI methods and their options) with torch, scipy and scikit-learn
    unimported: it answers in a fraction of a second, not after torch's three."""
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-c", CODE, str(root / "experiments.toml"),
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
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


def import_graph() -> dict[str, set[str]]:
    """Module -> ibtui modules it imports (anywhere in the file, lazy imports included)."""
    import ast

    root = Path(__file__).resolve().parent.parent
    modules = {}
    for p in (root / "ibtui").rglob("*.py"):
        parts = p.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = p
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, p in modules.items():
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def test_run_layer_does_not_reach_up_into_the_experiment():
    graph = import_graph()
    upward = [(m, t) for m, ts in graph.items() if m.startswith("ibtui.runs")
              for t in ts if t.startswith(("ibtui.experiment", "ibtui.worker", "ibtui.cli",
                                           "ibtui.tui", "ibtui.progress"))]
    assert not upward, upward


def test_no_import_cycles_between_modules():
    """Registries are the one allowed pattern: a package's __init__ imports its plugin modules,
    which import the package's register(). Any other cycle is a layering mistake."""
    graph = import_graph()

    def allowed(a: str, b: str) -> bool:  # b is a's own package: plugin -> registry
        return a.startswith(b + ".")

    edges = {m: {t for t in ts if not allowed(m, t)} for m, ts in graph.items()}
    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not sccs, sccs


# Layers, bottom first. A module imports only from its own layer or a lower one, lazily or not
# (a function-level import is still an import). Modules named in no layer (the experiment,
# the worker, the CLI, the app) are above them all. A name stands for the module and every
# module under it; the longest name that matches decides.
LAYERS = [
    ["ibtui.files", "ibtui.errors", "ibtui.faults", "ibtui.schema", "ibtui.runs.states", "ibtui.runs.config",
     "ibtui.runs.resources", "ibtui.runs.filter", "ibtui.fmt"],
    ["ibtui.spec", "ibtui.data", "ibtui.mi", "ibtui.models", "ibtui.train", "ibtui.runtime"],
    ["ibtui.runs.store", "ibtui.runs.claim"],  # the run directory's contract, and its index
    ["ibtui.analysis"],  # takes runs from the store
    ["ibtui.runs.board"],  # the leaderboard: runs ranked by analysis.validity
    ["ibtui.runs", "ibtui.runs.scheduler", "ibtui.runs.slurm", "ibtui.runs.launch"],
]


def layer_of(module: str) -> int:
    if module == "ibtui":  # the package itself (its version): imports nothing of ibtui
        return 0
    best = (len(LAYERS), 0)
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best[1]:
                best = (i, len(n))
    return best[0]


def test_imports_point_down_the_layers():
    graph = import_graph()
    upward = [(m, t) for m, ts in sorted(graph.items()) for t in sorted(ts)
              if layer_of(t) > layer_of(m)]
    assert not upward, upward


def test_the_runs_store_stands_on_the_bottom_layer_and_the_spec_only():
    """The store's index keeps each run's configuration key (ibtui.runs.config) and, for the
    leaderboard, a line the caller makes (RunIndex(line=...)): it imports neither analysis nor
    the board, not even inside a function."""
    graph = import_graph()
    assert graph["ibtui.runs.store"] <= {"ibtui.files", "ibtui.errors", "ibtui.runs.states",
                                         "ibtui.runs.config", "ibtui.spec"}
    assert graph["ibtui.runs.config"] == set()
    assert "ibtui.runs.config" in graph["ibtui.analysis.replicas"]
    assert layer_of("ibtui.runs.board") > layer_of("ibtui.analysis.validity") \
        > layer_of("ibtui.runs.store") > layer_of("ibtui.runs.config")
