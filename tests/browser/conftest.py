"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per test file.

The server runs in the candidate's bundle with the reference dropped into its ``exercises/``
(``tests/meta/bundled.py``; ``make lab`` in the bundle, with a correct solution): the
notebooks it opens are the bundle's, which ``tests/meta/test_bundle.py`` proves are the
committed ones, byte for byte.

Every test in this folder is marked ``browser``.  They need Debian's Chromium at
``/usr/bin/chromium`` (``apt-get install -y chromium``; ``LB_CHROMIUM`` points
elsewhere).  Without it they are skipped with that advice, except in CI (the
environment variable ``CI`` set), where a missing Chromium fails them: CI must
run them.  See ``docs/browser-tests.md``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import nbformat
import pytest

if TYPE_CHECKING:
    from lab_driver import Lab

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: Where in the served folder the checker's own tests write their throwaway notebooks.
SCRATCH = "scratch"
#: Where the screenshots go (git-ignored).
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = Path(os.environ.get("LB_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian/Ubuntu, as root), or set LB_CHROMIUM to a Chromium binary"

_SCREENSHOTS_KEY = pytest.StashKey[list[Path]]()


def in_ci() -> bool:
    """Whether we run in CI (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(what: str) -> NoReturn:
    message = f"browser tests need {what}"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so they must run, not be skipped", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``browser``."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SCREENSHOTS_KEY] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """List the screenshots the browser tests took, so a person can look at them."""
    shots = config.stash.get(_SCREENSHOTS_KEY, [])
    if shots:
        terminalreporter.section("browser screenshots (widgets before and after each interaction)")
        for shot in shots:
            terminalreporter.line(str(shot.relative_to(ROOT)) if shot.is_relative_to(ROOT) else str(shot))


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium binary (skip without it, fail in CI)."""
    if not CHROMIUM.exists():
        _missing(f"Chromium at {CHROMIUM}: {INSTALL_HINT}")
    return CHROMIUM


@pytest.fixture(scope="session")
def bundle_with_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's candidate bundle with the reference in its ``exercises/`` (built once per run)."""
    from tests.meta.bundled import shared_bundle

    return shared_bundle(tmp_path_factory) / "with-reference"


@pytest.fixture(scope="module")
def lab(
    chromium: Path, bundle_with_reference: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    """A :class:`lab_driver.Lab`: JupyterLab started like ``make lab`` in the candidate's bundle (with the
    reference dropped in, nothing of the repository importable), driven by headless Chromium.

    One per test file, stopped at its end whatever happens: while Playwright's sync API is open, its
    event loop runs in this thread, so a later test's ``asyncio.run()`` would fail ("cannot be called
    from a running event loop"), e.g. the gateway tests that ``make test`` runs on the same worker.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python (`pip install -e '.[test]'`)")
    from lab_driver import Lab, launch_chromium, start_lab  # after the check: it imports Playwright

    from tests.meta.bundled import bundle_env

    state = tmp_path_factory.mktemp("jupyterlab")
    env = bundle_env(bundle_with_reference, state / "shim", mpl_backend=None)
    server = start_lab(state, root=bundle_with_reference, env=env)
    request.addfinalizer(server.stop)
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, chromium, tmp_path_factory.mktemp("chromium-profile"))
        try:
            driver = Lab(server, context, SCREENSHOTS)
            yield driver
        finally:
            request.config.stash[_SCREENSHOTS_KEY].extend(driver.screenshots)
            context.close()


@pytest.fixture
def scratch_notebook(lab: Lab) -> Iterator[Callable[[str, list[str | nbformat.NotebookNode]], Path]]:
    """``scratch_notebook(name, [cell sources])`` writes a throwaway notebook inside the lab root.

    A cell is its source, or an ``nbformat`` code cell (to give it tags or built outputs).
    The notebooks live in ``scratch/`` of the folder JupyterLab serves, which is deleted
    after the test with what JupyterLab left there (``.ipynb_checkpoints``).
    """
    scratch = lab.server.root / SCRATCH

    def write(name: str, sources: list[str | nbformat.NotebookNode]) -> Path:
        scratch.mkdir(exist_ok=True)
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(source) if isinstance(source, str) else source for source in sources],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
        )
        path = scratch / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path

    yield write
    shutil.rmtree(scratch, ignore_errors=True)
