"""The tree is the architecture: rooms import only their own and lower rooms, no module
imports another in a cycle, each room says what it owns, and the package imports fast.

The import graph is read from the source (``ast``): module-level and function-level imports
both count; examples in docstrings do not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "celebseg_utils"
sys.path.insert(0, str(REPO_ROOT / "scripts"))  # count_architecture: one reading of private uses

#: Rooms, lowest first. A module may import its own room and lower rooms only.
LAYERS = ["ground", "visualization", "data", "face", "models", "engine", "interface", "top"]
#: Top-level modules and their room; every subpackage is the room of its name.
TOP_LEVEL = {"labels": "ground", "errors": "ground", "fileio": "ground", "tf_startup": "ground",
             "text": "ground",
             "cli": "top", "__main__": "top", "demo": "top", "study": "top",
             "__init__": "top"}  # the package's lazy public API may name any room


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return TOP_LEVEL["__init__"]
    head = parts[1]
    if head in TOP_LEVEL:
        return TOP_LEVEL[head]
    if head in LAYERS:
        return head
    raise AssertionError(f"{module} is in no room: add it to a subpackage or to TOP_LEVEL")


def imports_of(module: str, path: Path, modules) -> set[str]:
    """Package modules that ``module`` imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        for name in names:
            # ``import a.b.c`` needs a.b.c; the parent packages only run their docstrings.
            if name.split(".")[0] == PACKAGE.name and name in modules and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer_violations(graph) -> list[str]:
    rank = {room: i for i, room in enumerate(LAYERS)}
    return sorted(f"{a} ({room_of(a)}) imports {b} ({room_of(b)})"
                  for a, targets in graph.items() for b in targets
                  if rank[room_of(b)] > rank[room_of(a)])


def cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "celebseg_utils.errors" in graph["celebseg_utils.data.layout"]  # module level
    assert "celebseg_utils.data.shards" in graph["celebseg_utils.data.prepare"]  # in a function
    assert "celebseg_utils.data.layout" in graph["celebseg_utils.data.pipeline"]  # from pkg import mod
    assert "celebseg_utils.cli" in graph["celebseg_utils.__main__"]


def test_every_module_is_in_a_room():
    for module in package_modules():
        assert room_of(module) in LAYERS


def test_lower_rooms_never_import_upper_ones():
    assert layer_violations(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checks_catch_what_they_guard_against():
    bad = {"celebseg_utils.data.stats": {"celebseg_utils.engine.train"},
           "celebseg_utils.engine.train": {"celebseg_utils.engine.predict"},
           "celebseg_utils.engine.predict": {"celebseg_utils.engine.export"},
           "celebseg_utils.engine.export": {"celebseg_utils.engine.predict"}}
    assert layer_violations(bad) == [
        "celebseg_utils.data.stats (data) imports celebseg_utils.engine.train (engine)"]
    assert cycles(bad) == [["celebseg_utils.engine.export", "celebseg_utils.engine.predict"]]


@pytest.mark.parametrize("init", sorted(p.relative_to(REPO_ROOT).as_posix()
                                        for p in PACKAGE.rglob("__init__.py")))
def test_each_room_says_what_it_owns(init):
    tree = ast.parse((REPO_ROOT / init).read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc.splitlines()) >= 2, f"{init} needs a docstring: what the room owns"
    if init != "celebseg_utils/__init__.py":
        # A room's __init__ is its docstring: importing a room imports nothing heavy.
        assert all(isinstance(n, ast.Expr) for n in tree.body), f"{init} runs code"


def test_import_celebseg_utils_does_not_import_tensorflow():
    code = ("import sys, celebseg_utils\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'keras_cv', 'keras_hub', 'matplotlib')"
            " if m in sys.modules]\n"
            "print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def reachable(graph, start: str) -> set[str]:
    """Every package module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


#: The training engine: loading or running a model needs none of it.
TRAINING = {"celebseg_utils.engine.train", "celebseg_utils.engine.train_cli",
            "celebseg_utils.engine.callbacks", "celebseg_utils.engine.budget"}


@pytest.mark.parametrize("user", ["engine.inference", "engine.predict", "engine.export",
                                  "interface.widgets", "interface.notebook_figures"])
def test_loading_and_running_a_model_never_imports_the_training_engine(user):
    # Issue #23: predict loaded models through evaluate, which loaded them through train.
    reached = reachable(import_graph(), f"celebseg_utils.{user}")
    assert "celebseg_utils.engine.inference" in reached or user == "engine.inference"
    assert sorted(reached & TRAINING) == []


def test_reachable_follows_imports_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert reachable(graph, "a") == {"a", "b", "c"} and reachable(graph, "d") == {"a", "b", "c"}


def private_uses(module: str, path: Path, modules) -> set[tuple[str, str]]:
    """(owner module, private name) for each ``_name`` that ``module`` takes from another
    package module: ``from owner import _name``, or ``alias._name`` where ``alias`` is an
    imported package module (``import a.b as alias``, ``from a import b``). The reading is
    ``scripts/count_architecture.py``'s, which counts the same in any checkout."""
    import count_architecture

    return count_architecture.private_uses(module, ast.parse(path.read_text(), str(path)),
                                           set(modules))


def private_crossings() -> list[str]:
    modules = package_modules()
    return sorted(f"{m} ({room_of(m)}) uses {owner}.{name} ({room_of(owner)})"
                  for m, p in modules.items() for owner, name in private_uses(m, p, modules))


def test_no_module_takes_a_private_name_from_another_module():
    # Issue #23: a private helper used by another module, in its room or not, is an
    # interface nobody documented (stats._join read gs:// for shards and the pipeline).
    assert private_crossings() == []


def names_split_files(path: Path) -> bool:
    """Whether a module builds a path to a split file itself: ``PREP / "splits"``,
    ``join(PREP, "splits", ...)`` or ``f"{PREP}/splits/..."`` (docstrings do not count)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and getattr(node.right, "value", None) == "splits":
            return True
        if isinstance(node, ast.Call) and any(getattr(a, "value", None) == "splits"
                                              for a in node.args[1:]):  # not d.get("splits")
            return True
        if isinstance(node, ast.JoinedStr) and any("/splits/" in str(getattr(v, "value", ""))
                                                   for v in node.values):
            return True
    return False


#: Where a split file's path is built: layout, which reads it (local or gs://).
SPLIT_FILE_OWNERS = {"celebseg_utils.data.layout"}


def test_split_files_are_read_in_one_place():
    # Issue #23: train, scoring, stats and the notebooks each read split files their own way.
    assert {m for m, p in package_modules().items() if names_split_files(p)} == SPLIT_FILE_OWNERS


def test_the_split_file_check_sees_each_spelling(tmp_path):
    spellings = {'p / "splits" / "a.txt"': True, 'join(p, "splits", "a.txt")': True,
                 'f"{p}/splits/{s}.txt"': True, 'info["splits"]["val"]': False,
                 '{"splits": 3}': False, 'd.get("splits", {})': False, 'f"do not match splits/{s}.txt"': False}
    for code, expected in spellings.items():
        (tmp_path / "m.py").write_text(f'"""PREP/splits/a.txt"""\nx = {code}\n')
        assert names_split_files(tmp_path / "m.py") is expected, code


def test_the_private_name_check_sees_both_spellings(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from celebseg_utils.visualization.viz import _headless_backend\n"
                      "from celebseg_utils.engine import train as t\n"
                      "def f():\n    return t._test_scores\n")
    modules = package_modules()
    assert private_uses("celebseg_utils.study.x", source, modules) == {
        ("celebseg_utils.visualization.viz", "_headless_backend"),
        ("celebseg_utils.engine.train", "_test_scores")}


# --------------------------------------------------------------------------- the tests' own rules

TESTS = REPO_ROOT / "tests"


def test_tests_import_the_package_plainly():
    # Issue #23: importorskip on the project's own module hid an import error as a skip.
    # Skipping is for a missing third-party package only (mtcnn, papermill, tf_keras).
    offenders = [p.relative_to(REPO_ROOT).as_posix() for p in TESTS.rglob("*.py")
                 if 'importorskip("celebseg_utils' in p.read_text()
                 or "importorskip('celebseg_utils" in p.read_text()]
    assert offenders == [p for p in offenders if p.endswith("test_architecture.py")]


def test_the_shared_real_data_is_reached_through_conftest_only():
    # Issue #23: seven test files built their own ../shared path, each with its own skip.
    offenders = [p.relative_to(REPO_ROOT).as_posix() for p in TESTS.rglob("*.py")
                 if p.name not in ("conftest.py", "test_architecture.py")
                 and ('"shared"' in p.read_text() or "'shared'" in p.read_text())]
    assert offenders == []


def test_absent_shared_data_skips_saying_where_it_looked():
    from conftest import SHARED_DATA, shared_data

    with pytest.raises(pytest.skip.Exception, match=f"no {SHARED_DATA}/no_such_set/probe.png"):
        shared_data("no_such_set", "probe.png")
