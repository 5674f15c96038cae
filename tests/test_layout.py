"""The shape of the package (README, "How it works"): no import circle, one module that
asks the engine for connection results, and reading a file needs neither pandas, pyarrow
nor numpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "analyzer"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_module(dotted: str) -> bool:
    """A module of the package, Python or compiled (analyzer._engine)."""
    *parent, last = dotted.split(".")
    return dotted in MODULES or any(ROOT.joinpath(*parent).glob(last + ".*"))


def imports(name: str, path: Path) -> set[str]:
    """Package modules ``name`` imports, at module level or inside functions (a lazy
    import is still an edge: it runs), leaving out ``if TYPE_CHECKING:`` blocks."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom):
                base = package[:len(package) - child.level + 1] if child.level else []
                target = ".".join(base + ([child.module] if child.module else []))
                for alias in child.names:
                    full = f"{target}.{alias.name}"
                    if full in MODULES:
                        found.add(full)
                    elif not _is_module(full) and target in MODULES:
                        found.add(target)  # a name from the module itself
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name in MODULES)
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return found


def test_no_import_circle() -> None:
    graph = {name: imports(name, path) for name, path in MODULES.items()}
    done: set[str] = set()

    def walk(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(node):]
                                                                + [node]))
        if node in done:
            return
        for dep in sorted(graph[node]):
            walk(dep, trail + [node])
        done.add(node)

    for name in sorted(graph):
        walk(name, [])


def test_nothing_below_the_top_layer_imports_it() -> None:
    """analyzer.capture (Capture, read, sniff) is the thin top layer: only the package's
    entry points (the package itself, the CLIs, the parallel/dask runners, show) use it."""
    entry = {"analyzer", "analyzer.cli", "analyzer.parallel", "analyzer.dask",
             "analyzer.show", "analyzer.report.cli", "analyzer.connection"}
    users = sorted(name for name, path in MODULES.items()
                   if "analyzer.capture" in imports(name, path) and name not in entry)
    assert users == []


def test_only_the_results_model_asks_the_engine_for_connections() -> None:
    """Connection results leave the engine in one place: Engine.columns, called by
    analyzer.results alone (no positional tuple unpacked anywhere)."""
    callers = sorted(name for name, path in MODULES.items() if ".columns(" in path.read_text()
                     and name != "analyzer.results")
    assert callers == []
    engine_c = (ROOT / "csrc" / "module.c").read_text()
    assert 'M("conn",' not in engine_c and 'M("transitions",' not in engine_c
    assert 'M("columns",' in engine_c


def test_reading_and_writing_need_no_heavy_module(tmp_path: Path) -> None:
    code = ("import io, sys, analyzer\n"
            "from analyzer.formats import write\n"
            f"cap = analyzer.read({str(ROOT / 'captures' / 'echo-lo.pcap')!r})\n"
            "for fmt in ('table', 'jsonl', 'json', 'csv', 'zeek'):\n"
            "    write([cap], fmt, io.StringIO())\n"
            "list(cap.records())\n"
            "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy', 'matplotlib', 'dask')\n"
            "             if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"
