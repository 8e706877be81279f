"""Drive the course in JupyterLab, in headless Chromium, the way a learner does.

Used by the browser tests (``tests/browser``); see ``docs/browser-tests.md``.

* :func:`start_lab` starts JupyterLab like ``make lab`` does (the same
  ``jupyter_lab_config.py``), on 127.0.0.1 at a free port with a random token,
  with ``LB_IMPL=solution`` so the kernels run the reference.
* :func:`launch_chromium` starts Debian's Chromium through Playwright.
* :class:`Lab` checks one notebook (:meth:`Lab.check`): it opens the notebook,
  clears its outputs, runs all cells from the Run menu, waits for the kernel,
  checks every output, then uses every widget as a person would, with the
  mouse and the keyboard, and returns a :class:`NotebookReport` listing the
  problems found.

The widgets are found in the page, not in the code: any control that
ipywidgets renders (a slider, a dropdown, a button, ...) in any notebook is
driven, so a new notebook is covered without new test code.

What "a widget works" means here: for each kind of control it shows, one
control of that kind (the first, in page order, that can be operated and that
visibly drives something) is operated, and what the widget displays (its
images, HTML, labels, Output areas, menu entries) changes within one second,
and looks different in a screenshot.  A control that only parameterises an
action, like a menu of servers beside a "Drain server" button, counts when
clicking the first button on its row then changes the display.  Errors that
the kernel logs from widget callbacks (shown in JupyterLab's Log Console) are
reported with the control that caused them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import BrowserContext, ElementHandle, Locator, Page, Playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

__all__ = [
    "CHROMIUM_FLAGS",
    "LAB_CONFIG",
    "ROOT",
    "Interaction",
    "Lab",
    "LabServer",
    "NotebookReport",
    "Problem",
    "launch_chromium",
    "start_lab",
]

ROOT = Path(__file__).resolve().parents[2]
#: The configuration ``make lab`` uses.
LAB_CONFIG = ROOT / "jupyter_lab_config.py"

#: Flags for Chromium: headless, no sandbox (containers, root), nothing phoning home.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: JupyterLab user settings for the test server (its own settings directory, so a
#: developer's settings do not leak in).  Autosave is off: running the cells must never
#: write the committed notebooks.  News and update checks are off: no toast over the page.
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}

# ---------------------------------------------------------------------------------------
# The JupyterLab server
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab server started by :func:`start_lab`."""

    url: str  #: e.g. ``http://127.0.0.1:41234`` (no trailing slash)
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    root: Path = ROOT  #: the folder it serves (its ``jupyter_lab_config.py`` sets it)

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API (``path`` like ``/api/sessions``); returns the decoded JSON or None."""
        request = urllib.request.Request(f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, relpath: str) -> str:
        """The address that opens ``relpath`` (relative to :attr:`root`) in a fresh workspace."""
        return f"{self.url}/lab/tree/{quote(relpath)}?reset&token={self.token}"

    def shut_down_kernels(self, relpath: str | None = None) -> None:
        """Shut down the kernel sessions of ``relpath`` (of every notebook when None)."""
        try:
            for session in self.api("GET", "/api/sessions"):
                if relpath is None or session.get("path") == relpath:
                    self.api("DELETE", f"/api/sessions/{session['id']}")
        except (OSError, urllib.error.URLError):
            pass  # the server is gone: so are its kernels

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and everything in its process group, whatever state it is in.

        SIGTERM first (JupyterLab then shuts its kernels down), SIGKILL after ``timeout``.
        """
        self.shut_down_kernels()
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(5)


def jupyter_command() -> list[str]:
    """``jupyter lab`` from the environment running the tests (``.venv/bin/jupyter`` under ``make test``)."""
    jupyter = Path(sys.executable).with_name("jupyter")
    return [str(jupyter), "lab"] if jupyter.exists() else [sys.executable, "-m", "jupyterlab"]


def start_lab(state_dir: Path, *, root: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab as ``make lab`` does, plus what a test needs, and wait until it answers.

    Same command and configuration file as ``make lab`` (``root``'s ``jupyter_lab_config.py``:
    root ``root``, default page notebook 01), plus: no browser of its own, 127.0.0.1 at a
    free port, a random token, ``--allow-root`` when running as root (containers), and its
    runtime files, workspaces and user settings in ``state_dir`` (see
    :data:`LAB_USER_SETTINGS`).  ``env`` is the server's (and so its kernels')
    environment; by default this one with ``LB_IMPL=solution`` (kernels run the reference).
    ``root`` may be the candidate's bundle (``make lab`` there), with ``env`` putting it
    first on the path.  The server runs in its own process group; call :meth:`LabServer.stop`.
    """
    settings_dir, workspaces_dir, runtime_dir = (state_dir / name for name in ("user-settings", "workspaces", "runtime"))
    for relpath, values in LAB_USER_SETTINGS.items():
        target = settings_dir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    workspaces_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(24)
    command = [
        *jupyter_command(),
        f"--config={root / LAB_CONFIG.name}",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(
        dict(os.environ, LB_IMPL="solution") if env is None else env,
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
        JUPYTERLAB_WORKSPACES_DIR=str(workspaces_dir),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
    )
    log_path = state_dir / "jupyterlab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, process=process, log_path=log_path, root=root)
    try:
        _wait_until_up(server, timeout)
    except BaseException:  # Ctrl-C included: never leave a server behind
        server.stop()
        raise
    return server


def _wait_until_up(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {server.process.returncode} at startup:\n{server.log_tail()}")
        try:
            server.api("GET", "/api/status")
            return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {timeout:g} s:\n{server.log_tail()}") from None
            time.sleep(0.25)


# ---------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------


def launch_chromium(playwright: Playwright, executable: Path, user_data_dir: Path) -> BrowserContext:
    """Chromium (``executable``), headless, with a fresh profile in ``user_data_dir``."""
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(executable),
        headless=True,
        args=list(CHROMIUM_FLAGS),
        viewport={"width": 1440, "height": 1000},
    )
    context.set_default_timeout(30_000)
    return context


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing a learner would see go wrong."""

    notebook: str  #: path relative to the repository
    message: str
    cell: int | None = None  #: 0-based index among all cells, as in nbval's "Cell N"
    source: str = ""  #: the cell's first line
    widget: int | None = None  #: 1-based, among the cell's widget outputs
    control: str | None = None  #: e.g. "slider 'tokens'"

    def __str__(self) -> str:
        where = [self.notebook]
        if self.cell is not None:
            where.append(f"cell {self.cell}" + (f" `{self.source}`" if self.source else ""))
        if self.widget is not None:
            where.append(f"widget {self.widget}")
        if self.control:
            where.append(self.control)
        return f"{', '.join(where)}: {self.message}"


@dataclass
class Interaction:
    """One use of one control, and what followed."""

    cell: int
    widget: int
    kind: str  #: e.g. "slider"
    control: str  #: e.g. "slider 'tokens'"
    action: str  #: what was done, e.g. "dragged from 500 to 11,203"
    seconds: float | None = None  #: from the triggering event to the first visible change; None: no change
    via: str | None = None  #: the button clicked to apply the control, if the control alone changed nothing
    looks_different: bool | None = None  #: whether the widget's after-screenshot differs from its before-screenshot
    before: Path | None = None
    after: Path | None = None
    log_entries: tuple[int, int] = (0, 0)  #: Log Console entry counts before and after
    kernel_errors: list[str] = field(default_factory=list)  #: errors the kernel logged meanwhile
    failure: str | None = None  #: why the harness could not operate the control

    def ok(self, budget: float) -> bool:
        """The control drove a visible change within ``budget`` seconds and the kernel logged no error."""
        return (
            self.failure is None
            and self.seconds is not None
            and self.seconds <= budget
            and self.looks_different is not False
            and not self.kernel_errors
        )

    def outcome(self, budget: float, patience: float) -> str:
        """What happened, in words."""
        parts = [self.action]
        if self.via:
            parts.append(f"then clicked {self.via}")
        if self.failure:
            parts.append(self.failure)
        elif self.seconds is None:
            parts.append(f"what it drives did not change (waited {patience:g} s; expected a change within {budget:g} s)")
        elif self.seconds > budget:
            parts.append(f"what it drives changed after {self.seconds:.2f} s (expected within {budget:g} s)")
        else:
            parts.append(f"what it drives changed in {self.seconds:.2f} s")
            if self.looks_different is False:
                parts.append("but the widget's screenshot did not change")
        parts += [f"the kernel logged {error}" for error in self.kernel_errors]
        return "; ".join(parts)


@dataclass
class NotebookReport:
    """The result of :meth:`Lab.check` on one notebook."""

    notebook: str
    budget: float
    patience: float
    screenshot_dir: Path
    server_log: Path
    problems: list[Problem] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    widgets: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def screenshots(self) -> list[Path]:
        return [p for i in self.interactions for p in (i.before, i.after) if p is not None]

    def describe(self) -> str:
        """A human-readable account: timings, every interaction with its screenshots, problems."""
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines = [f"{self.notebook}: {self.widgets} widget(s), {len(self.interactions)} interaction(s) ({timing})"]
        for it in self.interactions:
            mark = "ok  " if it.ok(self.budget) else "FAIL"
            lines.append(f"  {mark} cell {it.cell} widget {it.widget} {it.control}: {it.outcome(self.budget, self.patience)}")
            for shot in (it.before, it.after):
                if shot is not None:
                    lines.append(f"         screenshot {_display_path(shot)}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  PROBLEM {problem}" for problem in self.problems]
        return "\n".join(lines)

    def failure_message(self) -> str:
        """The assertion message: each problem on its own line."""
        head = f"{len(self.problems)} problem(s) in {self.notebook} in JupyterLab:"
        tail = f"screenshots: {_display_path(self.screenshot_dir)}/; JupyterLab's log: {self.server_log}"
        return "\n".join([head, *(f"  - {problem}" for problem in self.problems), tail])


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# In-page helpers (JavaScript run in the JupyterLab page)
# ---------------------------------------------------------------------------------------

#: What a widget shows, as one string: images, canvases, HTML/labels/Output areas, progress
#: bars and the entries of its menus.  The controls' own state (a slider's handle and
#: readout, a menu's selection) is left out, so operating a control changes this only
#: when the control drives something.
FINGERPRINT_JS = """(root) => {
  const parts = [];
  for (const img of root.querySelectorAll('img')) parts.push('img ' + img.src);
  for (const canvas of root.querySelectorAll('canvas')) {
    try { parts.push('canvas ' + canvas.toDataURL()); } catch (e) { parts.push('canvas (tainted)'); }
  }
  const shown = '.widget-html-content, .widget-htmlmath-content, .widget-label-basic, .widget-output, '
    + '.widget-valid, .widget-hprogress, .widget-vprogress';
  for (const el of root.querySelectorAll(shown)) {
    if (el.parentElement && el.parentElement.closest('.widget-output')) continue;
    parts.push(el.className + ' ' + el.innerHTML);
  }
  for (const select of root.querySelectorAll('select')) {
    parts.push('menu ' + Array.from(select.options, o => o.value).join('|'));
  }
  return parts.join('\\n');
}"""

CHANGED_JS = f"([root, before]) => ({FINGERPRINT_JS})(root) !== before"

#: Whether Run All has finished: 'done' (every code cell ran), 'stopped' (an error stopped
#: it), 'dead' (the kernel died), or false (still running).
RUN_STATE_JS = """(panel) => {
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const status = indicator ? indicator.dataset.status : '';
  if (status === 'dead') return 'dead';
  if (status !== 'idle') return false;
  const prompts = Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'), p => p.textContent.trim());
  if (prompts.some(p => p.includes('*'))) return false;
  if (prompts.every(p => /^\\[\\d+\\]:$/.test(p))) return 'done';
  const errors = Array.from(panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'));
  return errors.some(o => /Traceback|Error|Exception/.test(o.textContent)) ? 'stopped' : false;
}"""

#: Every cell of the file is in the page (JupyterLab attaches a long notebook's cells in batches).
ALL_CELLS_JS = """([panel, count]) => panel.querySelectorAll('.jp-Notebook .jp-Cell').length >= count"""

#: Every cell in ``indices`` (the ones built with a widget) shows a rendered widget.
WIDGETS_SHOWN_JS = """([panel, indices]) => indices.every(i => {
  const cell = panel.querySelector(`.jp-Notebook .jp-Cell[data-windowed-list-index="${i}"]`);
  return cell !== null && cell.querySelector('.jupyter-widgets') !== null;
})"""

#: After Edit > Clear Outputs of All Cells: every code cell's prompt is blank.
PROMPTS_CLEARED_JS = """(panel) => Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
  .every(p => /^\\[ ?\\]:$/.test(p.textContent.trim()))"""

#: After Run > Run All Cells: some code cell is queued, running or done (or there is none).
RUN_STARTED_JS = """(panel) => {
  const prompts = Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'), p => p.textContent.trim());
  return prompts.length === 0 || prompts.some(p => /^\\[(\\*|\\d+)\\]:$/.test(p));
}"""

#: Widget outputs that have not rendered yet: an empty widget renderer, or "Loading widget..."
#: (shown while the widget manager looks for the model, up to 2 s before "model not found").
PENDING_WIDGETS_JS = """(panel) => Array.from(panel.querySelectorAll('.jp-Notebook .jp-OutputArea-output'))
  .filter(o => o.dataset.mimeType === undefined && !o.classList.contains('lm-mod-hidden')
               && o.childElementCount === 0 && ['', 'Loading widget...'].includes(o.textContent.trim())).length"""

#: The controls a person can operate, by kind, in the order they are tried.
CONTROL_KINDS: tuple[tuple[str, str], ...] = (
    ("slider", ".widget-slider"),
    ("dropdown", ".widget-dropdown select"),
    ("list", ".widget-select select"),
    ("radio buttons", ".widget-radio-box"),
    ("toggle buttons", ".widget-toggle-buttons"),
    ("checkbox", ".widget-checkbox input[type=checkbox]"),
    ("text field", ".widget-text input, .widget-textarea textarea"),
    ("button", "button.jupyter-button"),
)
CONTROL_SELECTOR = ", ".join(selector for _, selector in CONTROL_KINDS)

#: One entry per cell: its index, whether it is code, its prompt, and its top-level outputs.
#: Widget outputs get a ``data-lb-widget`` attribute, so that Python can find them again.
SCAN_CELLS_JS = """([panel, controlSelector]) => {
  let widgetNo = 0;
  return Array.from(panel.querySelectorAll('.jp-Notebook .jp-Cell'), cell => {
    const index = Number(cell.dataset.windowedListIndex);
    const prompt = cell.querySelector('.jp-InputPrompt');
    const outputs = Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
      .filter(o => !o.parentElement.closest('.jp-OutputArea-output'))
      .map(o => {
        const widget = o.classList.contains('jupyter-widgets') || o.querySelector('.jupyter-widgets') !== null;
        const id = widget ? `w${++widgetNo}` : null;
        if (id) o.dataset.lbWidget = id;
        return {
          mime: o.dataset.mimeType || null,
          text: o.textContent,
          widget: id,
          controls: widget ? o.querySelectorAll(controlSelector).length : 0,
          progress: widget ? o.querySelectorAll('.widget-hprogress, .widget-vprogress').length : 0,
        };
      });
    return {index, code: cell.classList.contains('jp-CodeCell'), prompt: prompt ? prompt.textContent.trim() : '', outputs};
  });
}"""

#: The controls in one widget output, tagged with ``data-lb-control`` ids.
SCAN_CONTROLS_JS = """(root, kinds) => {
  const seen = new Set();
  const found = [];
  const labelOf = el => {
    if (el.tagName === 'BUTTON') return (el.textContent.trim() || el.title || '').trim();
    const box = el.closest('.widget-inline-hbox, .widget-inline-vbox') || el;
    const label = box.querySelector('.widget-label');
    return label ? label.textContent.trim() : '';
  };
  for (const [kind, selector] of kinds) {
    for (const el of root.querySelectorAll(selector)) {
      if (seen.has(el)) continue;
      seen.add(el);
      if (kind === 'button' && el.closest('.widget-toggle-buttons')) continue;
      let operable = !el.disabled && !el.hasAttribute('disabled') && !el.classList.contains('mod-disabled');
      if (kind === 'slider') operable = operable && el.querySelector('.noUi-handle') !== null
        && !el.querySelector('.noUi-target[disabled]');
      if (kind === 'dropdown' || kind === 'list') operable = operable && el.options.length >= 2;
      if (kind === 'radio buttons') operable = operable && el.querySelectorAll('input[type=radio]:not(:checked):not(:disabled)').length > 0;
      if (kind === 'toggle buttons') operable = operable && el.querySelectorAll('button:not(.mod-active):not(:disabled)').length > 0;
      const id = `c${found.length + 1}`;
      el.dataset.lbControl = id;
      found.push({id, kind, label: labelOf(el), operable});
    }
  }
  return found;
}"""

#: The first enabled button on the same row (HBox) as a control, tagged ``data-lb-companion``.
COMPANION_JS = """(root, control) => {
  for (const b of root.querySelectorAll('[data-lb-companion]')) delete b.dataset.lbCompanion;
  const row = control.closest('.widget-hbox');
  if (!row || !root.contains(row)) return null;
  const button = Array.from(row.querySelectorAll('button.jupyter-button'))
    .find(b => !b.disabled && !b.closest('.widget-toggle-buttons'));
  if (!button) return null;
  button.dataset.lbCompanion = '1';
  return (button.textContent.trim() || button.title || 'a button').trim();
}"""

IMAGES_LOADED_JS = """(root) => Promise.all(Array.from(root.querySelectorAll('img'), img =>
  img.complete ? null : new Promise(resolve => { img.onload = img.onerror = resolve; setTimeout(resolve, 3000); })
)).then(() => Array.from(root.querySelectorAll('img')).filter(img => img.naturalWidth === 0).length)"""

#: Log Console entries (level, text) of one notebook, oldest first.
LOG_ENTRIES_JS = """(source) => {
  const area = Array.from(document.querySelectorAll('.jp-LogConsole .jp-OutputArea')).find(a => a.id === 'source:' + source);
  if (!area) return null;
  return Array.from(area.querySelectorAll(':scope > .jp-OutputArea-child'), child => {
    const prompt = child.querySelector('.jp-OutputArea-prompt');
    const output = child.querySelector('.jp-OutputArea-output');
    return [prompt ? (prompt.dataset.logLevel || '') : '', output ? output.textContent : ''];
  });
}"""

_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_summary(text: str) -> str | None:
    """``"ValueError: bad"`` when ``text`` (a stderr output) is a Python error, else None."""
    text = _ANSI.sub("", text)
    lines = _ERROR_LINE.findall(text)
    if "Traceback (most recent call last)" in text or lines:
        return (lines[-1] if lines else text.strip().splitlines()[-1]).strip()[:300]
    return None


#: nbval's tag for a cell whose output must be reproduced (``--nbval-lax`` compares only these).
CHECK_OUTPUT_TAG = "nbval-check-output"
#: How JupyterLab marks a text output: printed (stdout) or a plain-text result.
PLAIN_MIMES = ("application/vnd.jupyter.stdout", "text/plain")


def built_text(output: dict[str, Any]) -> str:
    """The text JupyterLab shows for a stored output when it is plain text (stdout, or a result with text/plain only), else ""."""
    if output.get("output_type") == "stream":
        text = output.get("text", "") if output.get("name") == "stdout" else ""
    else:
        data = output.get("data", {})
        text = data.get("text/plain", "") if set(data) == {"text/plain"} else ""
    return "".join(text) if isinstance(text, list) else text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "control"


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    return line if len(line) <= 60 else line[:57] + "..."


# ---------------------------------------------------------------------------------------
# Checking a notebook
# ---------------------------------------------------------------------------------------


class Lab:
    """A JupyterLab server and a browser: :meth:`check` checks one notebook in a new tab.

    ``budget``: the longest a widget may take to answer a control (seconds).
    ``patience``: how long to wait for an answer before deciding there is none.
    """

    def __init__(
        self,
        server: LabServer,
        context: BrowserContext,
        screenshot_dir: Path,
        *,
        budget: float = 1.0,
        patience: float = 4.0,
        run_timeout: float = 180.0,
        max_tries_per_kind: int = 3,
    ) -> None:
        self.server = server
        self.context = context
        self.screenshot_dir = screenshot_dir
        self.budget = budget
        self.patience = patience
        self.run_timeout = run_timeout
        self.max_tries_per_kind = max_tries_per_kind
        self.screenshots: list[Path] = []  #: every screenshot taken, for the session's summary

    def check(self, notebook: Path) -> NotebookReport:
        """Open ``notebook``, run all cells, check the outputs, use every widget; see the module docs."""
        relpath = notebook.resolve().relative_to(self.server.root.resolve()).as_posix()
        run = _NotebookRun(self, notebook, relpath)
        report = run.execute()
        self.screenshots += report.screenshots
        return report


class _NotebookRun:
    """One notebook, in one browser tab: the steps of :meth:`Lab.check`."""

    def __init__(self, lab: Lab, notebook: Path, relpath: str) -> None:
        self.lab = lab
        self.notebook = notebook
        self.relpath = relpath
        self.cells = json.loads(notebook.read_text())["cells"]
        self.shots = lab.screenshot_dir / notebook.stem
        self.report = NotebookReport(
            relpath, budget=lab.budget, patience=lab.patience, screenshot_dir=self.shots, server_log=lab.server.log_path
        )
        self.page: Page = None  # type: ignore[assignment]  # set in execute()
        self.page_errors: list[str] = []
        self.uses = 0  # interactions so far, to number the screenshots

    # -- the steps ------------------------------------------------------------------------

    def execute(self) -> NotebookReport:
        digest = _digest(self.notebook)
        shutil.rmtree(self.shots, ignore_errors=True)
        self.lab.server.shut_down_kernels(self.relpath)
        self.page = self.lab.context.new_page()
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        step = "opening the notebook"
        try:
            with self._timed("open"):
                self._open()
            step = "running all cells"
            with self._timed("run all"):
                state = self._run_all()
            step = "checking the outputs"
            self._check_outputs(state)
            if state not in ("done", "stopped"):
                return self.report  # the kernel is busy, dead or never started: its widgets cannot answer
            step = "using the widgets"
            with self._timed("widgets"):
                self._use_widgets()
            step = "reading the Log Console"
            self._attach_kernel_log()
        except PlaywrightError as error:  # a timeout included
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self._problem(f"the browser gave up while {step}: {first}")
        finally:
            self.page.close()
            self.lab.server.shut_down_kernels(self.relpath)
            self.report.notes += [f"page error: {e}" for e in self.page_errors]
            if _digest(self.notebook) != digest:
                self._problem("the file changed while JupyterLab had it open (saved by JupyterLab, or rewritten meanwhile)")
        return self.report

    def _open(self) -> None:
        """Load JupyterLab on the notebook; accept a kernel-selection dialog if one appears."""
        page = self.page
        page.goto(self.lab.server.lab_url(self.relpath))
        panel = page.locator(".jp-NotebookPanel").first
        panel.locator(".jp-Notebook .jp-Cell").first.wait_for()
        # JupyterLab attaches a long notebook's cells in batches after the first: wait for all of them,
        # or Run All may start (and the scan look) before the last cells exist (then the scan reports the count)
        try:
            page.wait_for_function(ALL_CELLS_JS, arg=[panel.element_handle(), len(self.cells)], polling=100, timeout=30_000)
        except PlaywrightTimeout:
            self.report.notes.append(f"JupyterLab had not attached all {len(self.cells)} cells 30 s after opening")
        idle = '.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]'
        page.locator(f"{idle}, .jp-Dialog").first.wait_for(timeout=60_000)
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            title = dialog.first.locator(".jp-Dialog-header").text_content() or "a dialog"
            self.report.notes.append(f"accepted the dialog {title.strip()!r} on opening")
            dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
            page.locator(idle).wait_for(timeout=60_000)
        # make the notebook the current document, as a click on its tab does: the Run menu acts on it
        name = self.relpath.rsplit("/", 1)[-1]
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name).first.click()

    def _menu(self, menu: str, command: str) -> None:
        """Click ``menu`` in the menu bar, then its entry for ``command`` (a JupyterLab command id)."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()

    def _run_all(self) -> str:
        """Edit > Clear Outputs of All Cells, then Run > Run All Cells; wait for the kernel to finish.

        Each menu command is checked to have taken effect (the prompts went blank, then
        a cell started) and clicked again if it did not: a click on a menu of a page that
        has just loaded is, rarely, lost.
        """
        panel = self.page.locator(".jp-NotebookPanel").first.element_handle()
        steps = (("Edit", "editmenu:clear-all", PROMPTS_CLEARED_JS), ("Run", "runmenu:run-all", RUN_STARTED_JS))
        for menu, command, took_effect in steps:
            for attempt in range(1, 4):
                self._menu(menu, command)
                try:
                    self.page.wait_for_function(took_effect, arg=panel, polling=50, timeout=5_000)
                    break
                except PlaywrightTimeout:
                    self.report.notes.append(f"{menu} > {command} had no effect (attempt {attempt}); clicking it again")
            else:
                self._problem(f"{menu} > {command} had no effect, three times")
                return "not started"
        try:
            handle = self.page.wait_for_function(RUN_STATE_JS, arg=panel, polling=200, timeout=self.lab.run_timeout * 1000)
        except PlaywrightTimeout:
            self._problem(f"the notebook was still running after {self.lab.run_timeout:g} s")
            return "timeout"
        state = str(handle.json_value())
        if state == "dead":
            self._problem("the kernel died while the notebook ran")
        # widgets render after the kernel is idle: give them a moment (a missing model takes 2 s)
        try:
            self.page.wait_for_function(f"(p) => ({PENDING_WIDGETS_JS})(p) === 0", arg=panel, polling=100, timeout=10_000)
        except PlaywrightTimeout:
            self._problem("a widget output stayed blank or 'Loading widget...' for 10 s after the kernel went idle")
        # ... and a widget output may not exist yet at all when the kernel goes idle (a cold browser renders late):
        # give the cells that showed a widget when the notebook was built the same 10 s to show it here
        expected = [i for i in range(len(self.cells)) if self._built_with_widget(i)]
        if state == "done" and expected:
            try:
                self.page.wait_for_function(WIDGETS_SHOWN_JS, arg=[panel, expected], polling=100, timeout=10_000)
            except PlaywrightTimeout:
                pass  # _check_outputs names each cell whose widget is missing
        return state

    def _check_outputs(self, state: str) -> None:
        """Every code cell ran, shows no error, and every widget renders with controls."""
        panel = self.page.locator(".jp-NotebookPanel").first.element_handle()
        cells = self.page.evaluate(SCAN_CELLS_JS, [panel, CONTROL_SELECTOR])
        seen = {c["index"] for c in cells}
        if len(cells) != len(self.cells) or seen != set(range(len(self.cells))):
            self._problem(f"JupyterLab shows {len(cells)} cells, the file has {len(self.cells)}")
        for cell in cells:
            i = cell["index"]
            if not cell["code"]:
                continue
            if not re.fullmatch(r"\[\d+\]:", cell["prompt"]):
                why = " (Run All stops at the first error)" if state == "stopped" else ""
                self._problem(f"did not run, its prompt shows {cell['prompt'] or 'nothing'!r}{why}", cell=i)
            widgets = [o for o in cell["outputs"] if o["widget"]]
            for output in cell["outputs"]:
                if output["mime"] == "application/vnd.jupyter.stderr" and (summary := error_summary(output["text"])):
                    self._problem(f"shows an error: {summary}", cell=i)
                if any(bad in output["text"] for bad in ("Error displaying widget", "model not found", "Loading widget...")):
                    self._problem(f"shows {output['text'].strip()[:120]!r}", cell=i)
            for number, output in enumerate(widgets, 1):
                self.report.widgets += 1
                if output["controls"] == 0 and output["progress"] == 0 and "Error displaying widget" not in output["text"]:
                    self._problem("shows a widget with no controls (nothing to slide, pick or click)", cell=i, widget=number)
            if self._built_with_widget(i) and not widgets:
                self._problem(
                    "showed a widget when the notebook was built (`make notebooks`) but shows none in JupyterLab", cell=i
                )
            if CHECK_OUTPUT_TAG in self.cells[i].get("metadata", {}).get("tags", []):
                self._compare_with_built(i, cell["outputs"])

    def _compare_with_built(self, index: int, outputs: list[dict[str, Any]]) -> None:
        """A cell tagged ``nbval-check-output`` prints what it printed when the notebook was built, as nbval checks
        (its text output, compared word by word: numbers included, line breaks and spacing not)."""
        shown = " ".join(o["text"] for o in outputs if o["mime"] in PLAIN_MIMES).split()
        built = " ".join(built_text(o) for o in self.cells[index].get("outputs", [])).split()
        if shown != built:
            first = next((n for n, (a, b) in enumerate(zip(shown, built)) if a != b), min(len(shown), len(built)))
            self._problem(
                f"is tagged {CHECK_OUTPUT_TAG} and printed {' '.join(shown[first:first + 12])!r} where the built notebook has "
                f"{' '.join(built[first:first + 12])!r} (word {first + 1})",
                cell=index,
            )

    def _built_with_widget(self, index: int) -> bool:
        cell = self.cells[index] if index < len(self.cells) else {}
        return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.get("outputs", []))

    # -- the widgets ----------------------------------------------------------------------

    def _use_widgets(self) -> None:
        """For every widget with controls: for each kind of control, operate one (see the module docs)."""
        for cell_index, widget_no, widget_id in self._widget_outputs():
            widget = self.page.locator(f'[data-lb-widget="{widget_id}"]')
            widget.scroll_into_view_if_needed()
            broken = widget.evaluate(IMAGES_LOADED_JS)
            if broken:
                self._problem(f"{broken} image(s) of the widget do not load", cell=cell_index, widget=widget_no)
            controls = widget.evaluate(SCAN_CONTROLS_JS, [list(k) for k in CONTROL_KINDS])
            for kind, _ in CONTROL_KINDS:
                of_kind = [c for c in controls if c["kind"] == kind]
                if not of_kind:
                    continue
                candidates = [c for c in of_kind if c["operable"]][: self.lab.max_tries_per_kind]
                if not candidates:
                    self.report.notes.append(
                        f"cell {cell_index} widget {widget_no}: no {kind} can be operated now (disabled or empty)"
                    )
                    continue
                tried = []
                for control in candidates:
                    interaction = self._use(cell_index, widget_no, widget, control)
                    tried.append(interaction)
                    if interaction.seconds is not None and interaction.failure is None and interaction.seconds > self.lab.budget:
                        # Late once: a load spike on a shared machine, or a slow widget? Operate it once more; the
                        # budget is met if either answer is within it (the best of two, as the cost rules keep the
                        # best round), and a widget that is always slow is late both times.
                        tried.append(self._use(cell_index, widget_no, widget, control))
                    if interaction.seconds is not None and interaction.failure is None:
                        break  # this control drives something; its timing and log are judged later
                self.report.interactions += tried

    def _widget_outputs(self) -> Iterator[tuple[int, int, str]]:
        """(cell index, widget number within the cell, data-lb-widget id) for each widget output."""
        panel = self.page.locator(".jp-NotebookPanel").first.element_handle()
        cells = self.page.evaluate(SCAN_CELLS_JS, [panel, CONTROL_SELECTOR])
        for cell in cells:
            widgets = [o for o in cell["outputs"] if o["widget"]]
            for number, output in enumerate(widgets, 1):
                if output["controls"]:
                    yield cell["index"], number, output["widget"]

    def _use(self, cell_index: int, widget_no: int, widget: Locator, control: dict[str, Any]) -> Interaction:
        """Operate ``control`` like a person, wait for the widget to answer, screenshot before and after."""
        name = f"{control['kind']} {control['label']!r}" if control["label"] else control["kind"]
        element = widget.locator(f'[data-lb-control="{control["id"]}"]')
        interaction = Interaction(cell=cell_index, widget=widget_no, kind=control["kind"], control=name, action="")
        self.uses += 1
        stem = f"cell{cell_index:02d}-widget{widget_no}-{self.uses:02d}-{_slug(control['kind'])}-{_slug(control['label'])}"
        element.scroll_into_view_if_needed()
        root = widget.element_handle()
        before = root.evaluate(FINGERPRINT_JS)
        before_png = self._screenshot(widget, f"{stem}-before.png")
        interaction.before = self.shots / f"{stem}-before.png"
        log_before = self._log_count()
        try:
            interaction.action, started = self._operate(control["kind"], element)
        except (PlaywrightError, ValueError) as error:
            interaction.failure = f"could not operate it: {str(error).splitlines()[0]}"
            self._screenshot(widget, f"{stem}-after.png")
            interaction.after = self.shots / f"{stem}-after.png"
            return interaction
        companion = None if control["kind"] == "button" else root.evaluate(COMPANION_JS, element.element_handle())
        interaction.seconds = self._wait_for_change(root, before, started, self.lab.budget if companion else self.lab.patience)
        if interaction.seconds is None and companion:
            interaction.via = f"button {companion!r} on its row"
            button = widget.locator("[data-lb-companion]")
            button.hover()
            started = time.perf_counter()
            button.click()
            interaction.seconds = self._wait_for_change(root, before, started, self.lab.patience)
        root.evaluate(IMAGES_LOADED_JS)
        after_png = self._screenshot(widget, f"{stem}-after.png")
        interaction.after = self.shots / f"{stem}-after.png"
        if interaction.seconds is not None:
            interaction.looks_different = after_png != before_png
        interaction.log_entries = (log_before, self._log_count())
        return interaction

    def _operate(self, kind: str, element: Locator) -> tuple[str, float]:
        """Do what a person does with a control of ``kind``; returns (what was done, when it took effect)."""
        page = self.page
        if kind == "slider":
            handle = element.locator(".noUi-handle").first
            track = element.locator(".noUi-base").first
            vertical = element.locator(".noUi-vertical").count() > 0
            readout = element.locator(".widget-readout").first
            value_before = (readout.text_content() if readout.count() else handle.get_attribute("aria-valuenow")) or "?"
            hb, tb = handle.bounding_box(), track.bounding_box()
            if hb is None or tb is None:
                raise ValueError("the slider is not visible")
            x, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
            if vertical:
                fraction = (tb["y"] + tb["height"] - y) / tb["height"]
                tx, ty = x, tb["y"] + tb["height"] * (0.3 if fraction < 0.5 else 0.75)
            else:
                fraction = (x - tb["x"]) / tb["width"]
                tx, ty = tb["x"] + tb["width"] * (0.7 if fraction < 0.5 else 0.25), y
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(tx, ty, steps=8)
            started = time.perf_counter()
            page.mouse.up()
            value_after = (readout.text_content() if readout.count() else handle.get_attribute("aria-valuenow")) or "?"
            if value_after.strip() == value_before.strip():
                raise ValueError(f"dragging the handle left the value at {value_before.strip()}")
            return f"dragged from {value_before.strip()} to {value_after.strip()}", started
        if kind in ("dropdown", "list"):
            options = element.evaluate("s => Array.from(s.options, o => o.textContent.replace(/\\u00a0/g, ' '))")
            current = element.evaluate("s => s.selectedIndex")
            target = (current + 1) % len(options)
            started = time.perf_counter()
            element.select_option(index=target)
            was = repr(options[current]) if current >= 0 else "blank"
            return f"picked {options[target]!r} (was {was})", started
        if kind == "radio buttons":
            choice = element.locator("input[type=radio]:not(:checked):not(:disabled)").first
            label = choice.evaluate("i => (i.closest('label') || i.parentElement).textContent.trim()")
            started = time.perf_counter()
            choice.click()
            return f"chose {label!r}", started
        if kind == "toggle buttons":
            choice = element.locator("button:not(.mod-active):not(:disabled)").first
            label = (choice.text_content() or "").strip()
            started = time.perf_counter()
            choice.click()
            return f"chose {label!r}", started
        if kind == "checkbox":
            checked = element.is_checked()
            started = time.perf_counter()
            element.click()
            return ("unticked it" if checked else "ticked it"), started
        if kind == "text field":
            value = element.input_value()
            kind_attr = element.get_attribute("type") or "text"
            new = str(float(value or 0) + 1).removesuffix(".0") if kind_attr == "number" else value + "x"
            element.fill(new)
            started = time.perf_counter()
            element.press("Enter")
            return f"typed {new!r} (was {value!r}) and pressed Enter", started
        if kind == "button":
            element.hover()
            started = time.perf_counter()
            element.click()
            return "clicked it", started
        raise ValueError(f"no way to operate a {kind}")

    def _wait_for_change(self, root: ElementHandle, before: str, started: float, patience: float) -> float | None:
        """Seconds from ``started`` until the widget's fingerprint differs from ``before``; None if it never does."""
        remaining = max(patience - (time.perf_counter() - started), 0.05)
        try:
            self.page.wait_for_function(CHANGED_JS, arg=[root, before], polling=20, timeout=remaining * 1000)
        except PlaywrightTimeout:
            return None
        return time.perf_counter() - started

    def _screenshot(self, widget: Locator, name: str) -> bytes:
        self.shots.mkdir(parents=True, exist_ok=True)
        return widget.screenshot(path=self.shots / name, animations="disabled", caret="hide")

    # -- the Log Console --------------------------------------------------------------------

    def _log_count(self) -> int:
        """How many entries the Log Console holds for this notebook (shown in the status bar)."""
        item = self.page.locator(".jp-LogConsoleStatusItem .jp-StatusBar-GroupItem[title]")
        if not item.count():
            return 0
        match = re.search(r"(\d+) log entr", item.first.get_attribute("title") or "")
        return int(match.group(1)) if match else 0

    def _attach_kernel_log(self) -> None:
        """Read the Log Console; give each interaction the errors logged while it ran; judge interactions."""
        entries: list[tuple[str, str]] = []
        if self._log_count():
            self.page.locator(".jp-LogConsoleStatusItem").click()
            handle = self.page.wait_for_function(
                f"() => {{ const e = ({LOG_ENTRIES_JS})({json.dumps(self.relpath)}); return e && e.length ? e : null; }}",
                timeout=10_000,
            )
            entries = [(level, text) for level, text in handle.json_value()]
        for interaction in self.report.interactions:
            first, last = interaction.log_entries
            for level, text in entries[first:last]:
                summary = error_summary(text)
                if level in ("error", "critical") or summary:
                    interaction.kernel_errors.append(summary or text.strip().splitlines()[-1][:200])
        attributed = {k for it in self.report.interactions for k in range(*it.log_entries)}
        for k, (level, text) in enumerate(entries):
            if k not in attributed and (level in ("error", "critical") or error_summary(text)):
                self._problem(f"the kernel logged an error (Log Console): {error_summary(text) or text.strip()[:200]}")
        self._judge_interactions()

    def _judge_interactions(self) -> None:
        """Problems: every control whose use made the kernel log an error, and every (widget, kind
        of control) where none of the controls tried answered visibly within the budget."""
        groups: dict[tuple[int, int, str], list[Interaction]] = {}
        for it in self.report.interactions:
            groups.setdefault((it.cell, it.widget, it.kind), []).append(it)
        budget, patience = self.lab.budget, self.lab.patience
        for (cell, widget, kind), tried in groups.items():
            for it in tried:
                if it.kernel_errors:
                    self._problem(it.outcome(budget, patience), cell=cell, widget=widget, control=it.control)
            if any(it.ok(budget) for it in tried):
                continue
            silent = [it for it in tried if not it.kernel_errors]
            if silent and {it.control for it in tried} == {silent[0].control}:  # one control (late twice counts once)
                self._problem(silent[-1].outcome(budget, patience), cell=cell, widget=widget, control=silent[0].control)
            elif silent:
                detail = " | ".join(f"{it.control}: {it.outcome(budget, patience)}" for it in silent)
                self._problem(f"no {kind} answers visibly within {budget:g} s: {detail}", cell=cell, widget=widget)

    # -- bookkeeping ------------------------------------------------------------------------

    def _problem(self, message: str, *, cell: int | None = None, widget: int | None = None, control: str | None = None) -> None:
        source = ""
        if cell is not None and cell < len(self.cells):
            raw = self.cells[cell].get("source", "")
            source = _first_line("".join(raw) if isinstance(raw, list) else raw)
        self.report.problems.append(Problem(self.relpath, message, cell, source, widget, control))

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        """Record how long the block took in the report, under ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.report.seconds[name] = time.perf_counter() - started


def _digest(path: Path) -> str:
    """SHA-256 of a file, to prove that JupyterLab left it untouched."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
