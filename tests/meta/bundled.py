"""The candidate's bundle as the tests use it: built by ``tools/make_bundle.py``, run with this
interpreter and the bundle first on ``sys.path`` (no install), nothing of the repository importable.

``tests/meta/test_bundle.py`` checks what is in it and runs its tests; the browser tests
(``tests/browser``) open its notebooks in JupyterLab with the reference dropped into its
``exercises/``.  :func:`shared_bundle` builds it once per test run: the workers of
``pytest -n 2`` share one build, made by whichever asks first.

``LB_BUNDLE_NOTEBOOKS=DIR`` ships the executed notebooks in DIR instead of the committed ones
(to try notebook changes before ``make notebooks``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import make_bundle  # noqa: E402
from make_exercises import EXERCISES  # noqa: E402

NAME = make_bundle.NAME
#: An editable install of the repository maps ``solution.*`` to the repository's folder even
#: when the bundle's ``solution`` comes first on the path: this drops that finder at start-up.
ISOLATE = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
"""


def shipped_notebooks() -> Path:
    """The folder whose executed notebooks the bundle ships: ``notebooks/``, or ``LB_BUNDLE_NOTEBOOKS``."""
    return Path(os.environ.get("LB_BUNDLE_NOTEBOOKS") or ROOT / "notebooks")


def build(out: Path) -> Path:
    """Write the bundle (folder and ``.tar.gz``) into ``out``; return ``out``."""
    command = [sys.executable, str(ROOT / "tools" / "make_bundle.py"), "--out", str(out)]
    if os.environ.get("LB_BUNDLE_NOTEBOOKS"):
        command += ["--notebooks", os.environ["LB_BUNDLE_NOTEBOOKS"]]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def drop_reference_in(bundle: Path, copy: Path) -> Path:
    """A copy of ``bundle`` at ``copy`` with the reference modules in its ``exercises/`` (as the grader's meta tests do)."""
    shutil.copytree(bundle, copy)
    for e in EXERCISES:
        shutil.copy(ROOT / "solution" / f"{e.module}.py", copy / "exercises" / f"{e.module}.py")
    return copy


def bundle_env(folder: Path, shim: Path, *, mpl_backend: str | None = "Agg") -> dict[str, str]:
    """This interpreter, ``folder`` (a bundle) first on sys.path, nothing of the repository importable.

    ``mpl_backend``: exported as MPLBACKEND for headless runs (nbval); None leaves it unset, as
    on a candidate's machine (JupyterLab's kernels then use the inline backend).
    """
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(ISOLATE)
    dropped = ("LB_IMPL", "LB_EXERCISES_PATH", "PYTHONPATH", "LB_TEST_TIMEOUT", "MPLBACKEND")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(shim)])
    if mpl_backend:
        env["MPLBACKEND"] = mpl_backend
    return env


def shared_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's bundle build: a folder holding ``candidate-bundle/`` (untouched),
    ``candidate-bundle.tar.gz``, ``with-reference/`` (:func:`drop_reference_in`) and ``shim/``.

    Built once per run: the workers of ``pytest -n`` share it through the run's base temporary
    folder, under a file lock, so each of them gets the same finished build.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / "shared-bundle"
    with open(base / "shared-bundle.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = folder / "complete"
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # a build that died half-way
                build(folder)
                drop_reference_in(folder / NAME, folder / "with-reference")
                (folder / "shim").mkdir()
                done.write_text("built\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder
