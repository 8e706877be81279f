"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

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
#: Throwaway notebooks the checker's own tests write (git-ignored, never collected by nbval).
SCRATCH = HERE / "scratch"
#: Where the screenshots go (git-ignored).
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = Path(os.environ.get("LB_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian/Ubuntu, as root), or set LB_CHROMIUM to a Chromium binary"

collect_ignore_glob = ["scratch/*"]

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
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A :class:`lab_driver.Lab`: JupyterLab started like ``make lab``, driven by headless Chromium.

    The server and the browser are stopped at the end of the session whatever happens.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python (`pip install -e '.[test]'`)")
    from lab_driver import Lab, launch_chromium, start_lab  # after the check: it imports Playwright

    state = tmp_path_factory.mktemp("jupyterlab")
    server = start_lab(state)
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
def scratch_notebook() -> Iterator[Callable[[str, list[str]], Path]]:
    """``scratch_notebook(name, [cell sources])`` writes a throwaway notebook inside the lab root.

    The notebooks live in ``tests/browser/scratch/`` (git-ignored, not collected), which is
    deleted after the test with what JupyterLab left there (``.ipynb_checkpoints``).
    """

    def write(name: str, sources: list[str]) -> Path:
        SCRATCH.mkdir(exist_ok=True)
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(source) for source in sources],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
        )
        path = SCRATCH / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path

    yield write
    shutil.rmtree(SCRATCH, ignore_errors=True)
