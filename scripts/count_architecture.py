"""Count the copies issue #23 is about, in one or more checkouts, side by side.

    git archive 4eecbc4 | tar -x -C /tmp/arch-before      # any commit, unpacked
    python scripts/count_architecture.py /tmp/arch-before . --json docs/bench/architecture_counts.json

Each count is read from the source with ``ast`` (docstrings and comments do not count), over
``celebseg_utils/`` of each checkout:

- ``model loaders``: functions that call a model-loading API themselves
  (``keras.saving.load_model``, ``keras.models.load_model``, ``tf.saved_model.load``,
  ``keras.layers.TFSMLayer``); a function that calls the project's own loader does not count.
- ``preprocessing paths``: functions outside ``data/`` (the training pipeline's own resize)
  that resize a photo (``tf.image.resize(..., antialias=True)``, ``resize_with_pad``, PIL
  ``.resize((w, h))``) in a module that runs a model itself (``model(...)``,
  ``model.predict``, ``predict_on_batch``): the ways a photo reaches a model's input.
- ``confusion loops``: functions outside ``models/metrics.py`` (where the metric is defined)
  that build a confusion matrix from labels and predictions: a call to
  ``confusion_matrix_np`` or ``tf.math.confusion_matrix``, or ``np.bincount`` of
  ``NUM_CLASSES * truth + prediction``.
- ``places a loss is named``: literal tables (dict, list, tuple, set) that name two or more
  loss recipes (the registry's names, read from this checkout's ``models/recipes.py``), each
  table counted once however nested.
- ``longest function in engine/``: lines from ``def`` to its last line.
- ``duration formatters``: functions whose f-strings write both ``min`` and ``s`` or ``h``
  units (a wrapper that only calls another formatter is not one).
- ``split file readers``: modules that build a path to ``splits/<name>.txt`` themselves
  (``PREP / "splits"``, ``join(PREP, "splits", ...)``, ``f"{PREP}/splits/..."``).
- ``cross-module private imports``: ``(module, owner._name)`` pairs where a package module
  takes a private name from another package module (``from owner import _x`` or
  ``alias._x``), in the same room or not.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOAD_CALLS = {"load_model", "TFSMLayer"}
RESIZE_CALLS = {"resize", "resize_with_pad"}
FORWARD_CALLS = {"predict", "predict_on_batch"}


def loss_names() -> set[str]:
    """The loss recipes' names and their losses, from this checkout's registry."""
    sys.path.insert(0, str(REPO_ROOT))
    from celebseg_utils.models.recipes import RECIPES

    return set(RECIPES) | {r.loss for r in RECIPES.values()}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _functions(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _calls(fn):
    return [_dotted(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)]


def is_loader(fn) -> bool:
    for name in _calls(fn):
        last = name.rsplit(".", 1)[-1]
        if (last in LOAD_CALLS and ("keras" in name or last == "TFSMLayer")) \
                or name.endswith("saved_model.load"):
            return True
    return False


def resizes_photo(fn) -> bool:
    """A photo resize: ``tf.image.resize(..., antialias=True)``, ``resize_with_pad``, or a
    PIL ``.resize((w, h), ...)``; a bilinear resize of logits back to a photo's size is not
    one."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if last == "resize_with_pad":
                return True
            if name.endswith("image.resize") and any(
                    k.arg == "antialias" and getattr(k.value, "value", False) for k in node.keywords):
                return True
            if last == "resize" and not name.endswith("image.resize") and node.args \
                    and isinstance(node.args[0], ast.Tuple):
                return True
    return False


def runs_model(fn) -> bool:
    """A model's forward pass: ``model(...)``, ``self.model(...)``, ``.predict``, ``.predict_on_batch``."""
    return any(c == "model" or c.endswith(".model") or c.rsplit(".", 1)[-1] in FORWARD_CALLS
               for c in _calls(fn))


def is_confusion_loop(fn) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("confusion_matrix_np") or name.endswith("math.confusion_matrix"):
                return True
            if name.endswith("bincount") and node.args and "NUM_CLASSES" in ast.unparse(node.args[0]) \
                    and "*" in ast.unparse(node.args[0]):
                return True
    return False


def loss_tables(tree, names: set[str]) -> int:
    """Literal tables naming two or more losses; an inner table of a counted one is not
    counted again."""
    count, inside = 0, set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Dict, ast.List, ast.Tuple, ast.Set)) or id(node) in inside:
            continue
        found = {n.value for n in ast.walk(node)
                 if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names}
        if len(found) >= 2:
            count += 1
            inside.update(id(n) for n in ast.walk(node))
    return count


def formats_durations(fn) -> bool:
    """A value written with a unit after it: ``f"{m} min {s:02d} s"``, ``f"{h} h ..."``."""
    units = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.JoinedStr):
            for before, after in zip(node.values, node.values[1:]):
                if isinstance(before, ast.FormattedValue) and isinstance(after, ast.Constant):
                    text = str(after.value)
                    units |= {u for u in (" min", " s", " h ") if text == u or text.startswith(
                        u if u.endswith(" ") else u + " ")}
    return " min" in units and (" s" in units or " h " in units)


def names_split_files(tree) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and getattr(node.right, "value", None) == "splits":
            return True
        if isinstance(node, ast.Call) and any(getattr(a, "value", None) == "splits"
                                              for a in node.args[1:]):
            return True
        if isinstance(node, ast.JoinedStr) and any("/splits/" in str(getattr(v, "value", ""))
                                                   for v in node.values):
            return True
    return False


def private_uses(module: str, tree, modules: set[str]) -> set[tuple[str, str]]:
    aliases, found = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in modules:
                    aliases[a.asname or a.name] = full
                elif (node.module in modules and a.name.startswith("_")
                      and not a.name.startswith("__") and node.module != module):
                    found.add((node.module, a.name))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__") and aliases[node.value.id] != module):
            found.add((aliases[node.value.id], node.attr))
    return found


def count(checkout: Path, names: set[str]) -> dict:
    package = checkout / "celebseg_utils"
    paths = sorted(package.rglob("*.py"))
    trees = {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in paths}

    def module(p):
        parts = p.relative_to(checkout).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {module(p) for p in paths}
    where = {"model loaders": [], "preprocessing paths": [], "confusion loops": [],
             "duration formatters": [], "split file readers": []}
    longest, losses, private = ("", 0), [], []
    for p, tree in trees.items():
        rel = p.relative_to(checkout).as_posix()
        runs_model_here = any(runs_model(fn) for fn in _functions(tree))
        for fn in _functions(tree):
            at = f"{rel}:{fn.lineno} {fn.name}"
            if is_loader(fn):
                where["model loaders"].append(at)
            if runs_model_here and resizes_photo(fn) and not rel.startswith("celebseg_utils/data/"):
                where["preprocessing paths"].append(at)
            if is_confusion_loop(fn) and not rel.endswith("models/metrics.py"):
                where["confusion loops"].append(at)
            if formats_durations(fn):
                where["duration formatters"].append(at)
            length = fn.end_lineno - fn.lineno + 1
            if rel.startswith("celebseg_utils/engine/") and length > longest[1]:
                longest = (at, length)
        losses += [rel] * loss_tables(tree, names)
        if names_split_files(tree):
            where["split file readers"].append(rel)
        private += [f"{module(p)} uses {owner}.{name}"
                    for owner, name in sorted(private_uses(module(p), tree, modules))]
    counts = {k: len(v) for k, v in where.items()}
    counts["places a loss is named"] = len(losses)
    counts["longest function in engine/ (lines)"] = longest[1]
    counts["cross-module private imports"] = len(private)
    detail = {**where, "places a loss is named": losses,
              "longest function in engine/ (lines)": [longest[0]],
              "cross-module private imports": private}
    return {"counts": counts, "where": detail}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="checkout folders to count")
    parser.add_argument("--names", nargs="+", default=None, help="column names, one per checkout")
    parser.add_argument("--json", type=Path, default=None, help="write counts and places here")
    parser.add_argument("--where", action="store_true", help="print where each count was found")
    args = parser.parse_args(argv)
    names = args.names or [str(c) for c in args.checkouts]
    if len(names) != len(args.checkouts):
        parser.error("--names needs one name per checkout")
    for c in args.checkouts:
        if not (c / "celebseg_utils").is_dir():
            print(f"error: {c} has no celebseg_utils/ folder: give a checkout", file=sys.stderr)
            return 2
    losses = loss_names()
    results = {n: count(c, losses) for n, c in zip(names, args.checkouts)}
    keys = list(next(iter(results.values()))["counts"])
    print("| count | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in keys:
        print(f"| {key} | " + " | ".join(str(results[n]["counts"][key]) for n in names) + " |")
    if args.where:
        for n in names:
            print(f"\n## {n}")
            for key, places in results[n]["where"].items():
                print(f"{key}:\n" + "".join(f"  {p}\n" for p in places), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python scripts/count_architecture.py "
                                         + " ".join(map(str, args.checkouts)),
                                         "checkouts": dict(zip(names, map(str, args.checkouts))),
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
