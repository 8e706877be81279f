"""The candidate's bundle (``tools/make_bundle.py``): no reference inside, and it works.

Built once per test run (``tests/meta/bundled.py``, shared with the browser tests), then:

* the withheld modules are absent, and no body of the reference (a ``### BEGIN
  SOLUTION`` or ``### BEGIN OMIT`` block of a candidate module, a stripped
  ``### BEGIN REFERENCE`` block, a function of ``solution/widgets/explain.py``)
  appears in any file of the bundle, notebooks' outputs and recorded results
  included;
* run with this interpreter and the bundle first on ``sys.path`` (no install),
  its notebooks on the untouched stubs fail exactly at the check cells of the
  exercise notebooks, every other cell runs;
* with the reference copied into its ``exercises/`` (as the grader's meta tests
  do), its public tests all pass;
* its notebooks are the committed ones, byte for byte (those of
  ``LB_BUNDLE_NOTEBOOKS=DIR`` when set: see ``tests/meta/bundled.py``).  With the
  reference dropped in, the browser tests (``tests/browser``) open these very files
  in JupyterLab in the bundle, run every cell (no error, no cell left unrun) and use
  every widget; nbval runs the same files in the repository (``make test``).
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.meta.bundled import EXERCISES, ROOT, bundle_env, drop_reference_in, make_bundle, shared_bundle, shipped_notebooks

pytestmark = [pytest.mark.meta, pytest.mark.slow]

#: A check cell's tag.
CHECK_TAGS = ("check-cell",)
EXERCISE_NOTEBOOKS = {Path(e.notebook).name for e in EXERCISES}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(built: Path) -> Path:
    return built / make_bundle.NAME


def run_pytest(folder: Path, shim: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict[tuple[str, str], tuple[bool, str, str]]]:
    """Run pytest in ``folder``; return the process and ``{(file, test): (passed, tags, message)}``."""
    report = folder / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml", str(report), "-o", "junit_family=xunit1", *args],
        cwd=folder, env=bundle_env(folder, shim), capture_output=True, text=True, timeout=900,
    )
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        tags = next((p.get("value", "") for p in case.iter("property") if p.get("name") == "tags"), "")
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        key = (case.get("file") or case.get("classname", ""), case.get("name", ""))
        outcomes[key] = (problem is None, tags, "" if problem is None else (problem.get("message") or "")[:300])
    return proc, outcomes


# -- what is in it ---------------------------------------------------------------------------------


def test_the_archive_holds_the_folder(built, bundle):
    with tarfile.open(built / f"{make_bundle.NAME}.tar.gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    on_disk = {f"{make_bundle.NAME}/{p.relative_to(bundle).as_posix()}": p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert members == on_disk


def test_the_withheld_modules_are_absent(bundle):
    for e in EXERCISES:
        assert not (bundle / "solution" / f"{e.module}.py").exists()
        assert (bundle / "exercises" / f"{e.module}.py").is_file()
    assert not (bundle / "solution" / "widgets" / "explain.py").exists()
    assert not (bundle / "solution" / "grading").exists()
    assert not list(bundle.rglob("*.pyc"))
    for path in bundle.rglob("*.py"):
        assert not re.search(r"### (BEGIN|END) (SOLUTION|OMIT|REFERENCE)", path.read_text()), f"{path} still has markers"
    for name in ("Makefile", "README.md", "pyproject.toml", "conftest.py"):
        assert (bundle / name).is_file()
    assert "lab:" in (bundle / "Makefile").read_text() and "test:" in (bundle / "Makefile").read_text()


def _normalized(text: str) -> str:
    """Code lines without indentation, runs of blanks, blank lines or comment-only lines."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def _answers() -> dict[str, str]:
    """``{where: normalized source}`` of every body a candidate must not be given."""
    found: dict[str, str] = {}
    marker = re.compile(r"^\s*### BEGIN (SOLUTION|OMIT)\b.*?\n(.*?)^\s*### END \1\s*$", re.MULTILINE | re.DOTALL)
    for e in EXERCISES:
        source = (ROOT / "solution" / f"{e.module}.py").read_text()
        for n, match in enumerate(marker.finditer(source)):
            found[f"solution/{e.module}.py {match.group(1)} block {n}"] = _normalized(match.group(2))
    for path, blocks in make_bundle.reference_blocks().items():
        for n, block in enumerate(blocks):
            found[f"{path} REFERENCE block {n}"] = _normalized(block)
    explain = (ROOT / "solution" / "widgets" / "explain.py").read_text()
    for node in ast.walk(ast.parse(explain)):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            found[f"solution/widgets/explain.py {node.name}"] = _normalized("\n".join(ast.get_source_segment(explain, s) for s in body))
    # a lone short line (`return self._policy`) is too common to mean anything
    return {k: v for k, v in found.items() if "\n" in v or len(v) >= 40}


def _text_of(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    if path.suffix == ".ipynb":
        nb = json.loads(data)
        parts = []
        for cell in nb["cells"]:
            parts.append("".join(cell.get("source", "")))
            for output in cell.get("outputs", []):
                parts.append("".join(output.get("text", "")))
                for mime, value in output.get("data", {}).items():
                    if mime.startswith("text/") or mime.endswith("json"):
                        parts.append(value if isinstance(value, str) else "".join(value) if isinstance(value, list) else json.dumps(value))
        return "\n".join(parts)
    return data.decode("utf-8", errors="ignore")


def _found_in(folder: Path, answers: dict[str, str]) -> list[str]:
    text = "\n".join(_normalized(_text_of(p)) for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".png"))
    return [where for where, body in answers.items() if body in text]


def test_no_reference_body_is_inside(bundle):
    answers = _answers()
    assert len(answers) >= 20, f"only {len(answers)} reference bodies to look for: is the scan broken?"
    found = _found_in(bundle, answers)
    assert not found, f"reference code in the bundle: {found[:5]}"


def test_the_scan_finds_the_reference_when_it_is_there(bundle, tmp_path):
    """The control: a copy with the reference dropped in shows every candidate-module body."""
    copy = tmp_path / "copy"
    shutil.copytree(bundle / "exercises", copy)
    for e in EXERCISES:
        shutil.copy(ROOT / "solution" / f"{e.module}.py", copy / f"{e.module}.py")
    answers = {k: v for k, v in _answers().items() if k.split()[0] in {f"solution/{e.module}.py" for e in EXERCISES}}
    assert sorted(_found_in(copy, answers)) == sorted(answers)


# -- it runs ---------------------------------------------------------------------------------------


def _check_cells(folder: Path) -> set[tuple[str, str]]:
    """``(notebook file, "Cell N")`` of every check cell of the exercise notebooks, as nbval names them."""
    cells = set()
    for path in sorted((folder / "notebooks").glob("*.ipynb")):
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]  # nbval counts code cells
        for index, cell in enumerate(code):
            if path.name in EXERCISE_NOTEBOOKS and set(CHECK_TAGS) & set(cell.get("metadata", {}).get("tags", [])):
                cells.add((f"notebooks/{path.name}", f"Cell {index}"))
    return cells


def test_the_bundle_has_no_reference_to_import(bundle, tmp_path):
    probe = ("import importlib.util, solution\nfrom solution.core.impl import reference_available, impl_name\n"
             "assert not reference_available() and impl_name(default='solution') == 'exercises'\n"
             "assert all(importlib.util.find_spec(f'solution.{m}') is None for m in ('balancer', 'request_queue', 'strategies', 'health', 'affinity', 'tiers', 'deploy', 'retry'))\n"
             "assert solution.__file__.startswith(%r)\nimport exercises\nassert exercises.__file__.startswith(%r)\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", probe % (str(bundle), str(bundle))], cwd=bundle, env=bundle_env(bundle, tmp_path / "shim"),
                   check=True, capture_output=True, text=True)  # fmt: skip


def test_on_the_stubs_exactly_the_check_cells_fail(bundle, tmp_path):
    proc, outcomes = run_pytest(bundle, tmp_path / "shim", "notebooks", "--nbval-lax", "--nbval-current-env")
    assert outcomes, proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = _check_cells(bundle)
    tagged = {key for key, (_, tags, _) in outcomes.items() if set(CHECK_TAGS) & set(tags.split(",")) and Path(key[0]).name in EXERCISE_NOTEBOOKS}
    assert tagged == checks, "nbval's cell names do not match the notebooks' check cells"
    failed = {key: message for key, (passed, _, message) in outcomes.items() if not passed}
    assert not {k: m for k, m in failed.items() if k not in checks}, "cells other than check cells fail on the stubs"
    assert set(failed) == checks, f"check cells that pass on the untouched stubs: {sorted(checks - set(failed))}"
    for exercise in EXERCISES:
        assert any(Path(f).name == Path(exercise.notebook).name for f, _ in checks), f"{exercise.notebook} has no check cell"


def test_with_the_reference_dropped_in_its_tests_pass(bundle, tmp_path):
    copy = drop_reference_in(bundle, tmp_path / "bundle")
    proc, outcomes = run_pytest(copy, tmp_path / "shim", "tests")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert not [k for k, (passed, _, _) in outcomes.items() if not passed]
    assert any(k[0].startswith("tests/stage1/") for k in outcomes), sorted(outcomes)[:5]


def test_its_notebooks_are_the_committed_ones(bundle):
    """What the browser tests run in the bundle (with the reference dropped in) is what nbval runs in the repository."""
    committed = {p.name: p.read_bytes() for p in sorted(shipped_notebooks().glob("*.ipynb"))}
    shipped = {p.name: p.read_bytes() for p in sorted((bundle / "notebooks").glob("*.ipynb"))}
    assert sorted(shipped) == sorted(committed)
    assert [name for name in committed if shipped[name] != committed[name]] == []
