"""Execute the notebook sources into the committed notebooks, or check that they are in sync.

Notebooks are written as jupytext "percent" scripts in ``notebooks/src/``
(reviewable diffs) and committed executed, as ``notebooks/<name>.ipynb``,
against the reference (``LB_IMPL=solution``), so a reader sees the outputs
and nbval has outputs to compare the check cells with.

Usage::

    python tools/build_notebooks.py              # execute every source
    python tools/build_notebooks.py 01_least_connections
    python tools/build_notebooks.py --check      # exit 1 if a notebook differs from its source
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"


def sources(names: list[str] | None = None) -> list[Path]:
    found = sorted(SOURCES.glob("*.py"))
    if names:
        found = [p for p in found if p.stem in names]
        missing = set(names) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no source notebooks/src/<name>.py for: {', '.join(sorted(missing))}")
    return found


def _shape(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between a source and its notebook: cell types, sources, tags."""
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def out_of_sync(source: Path) -> str | None:
    """Why the notebook built from ``source`` is stale, or None when it is in sync."""
    target = NOTEBOOKS / f"{source.stem}.ipynb"
    if not target.exists():
        return f"{target.relative_to(ROOT)} is missing"
    want, have = _shape(jupytext.read(source)), _shape(nbformat.read(target, as_version=4))
    if want == have:
        unexecuted = [i for i, c in enumerate(nbformat.read(target, as_version=4).cells) if c.cell_type == "code" and c.get("execution_count") is None]
        return f"{target.relative_to(ROOT)} has unexecuted code cells {unexecuted}" if unexecuted else None
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            return f"{target.relative_to(ROOT)} cell {i} differs from {source.relative_to(ROOT)}"
    return f"{target.relative_to(ROOT)} has {len(have)} cells, its source {len(want)}"


def build(source: Path, timeout: int = 600) -> Path:
    """Execute ``source`` against the reference and write the .ipynb beside the sources."""
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata.pop("jupytext", None)
    for number, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what the code printed
        cell["id"] = f"cell-{number:03d}"
    os.environ["LB_IMPL"] = "solution"  # committed outputs come from the reference
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
        record_timing=False, store_widget_state=True,
    )
    client.execute()
    target = NOTEBOOKS / f"{source.stem}.ipynb"
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--check", action="store_true", help="only check that each notebook matches its source")
    args = parser.parse_args(argv)
    if args.check:
        problems = [p for p in map(out_of_sync, sources(args.names)) if p]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make notebooks` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for source in sources(args.names):
        print(f"executing {source.relative_to(ROOT)} ...", flush=True)
        print(f"  wrote {build(source).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
