"""Pictures of a cluster, drawn from a stats snapshot with matplotlib's OO API.

No pyplot state is touched, so drawing works the same in a notebook, in a
widget callback and in a test with the Agg backend.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["draw_cluster", "figure_png", "CachedExplorer"]

_FREE, _BUSY, _DRAIN, _CHOSEN = "#e8edf3", "#4c78a8", "#b0b0b0", "#f58518"


def draw_cluster(
    stats: Mapping[str, Mapping[str, Any]],
    *,
    highlight: str | None = None,
    title: str = "each server's slots (filled: running a request)",
    figsize: tuple[float, float] = (7.5, 3.0),
) -> Figure:
    """Draw each server as a column of slots: filled slots run a request.

    The label under a column gives its GPU memory and load ratio; a draining
    server is grey and hatched; ``highlight`` outlines one server in orange.
    ``title`` says what the picture shows (an empty title is refused: a
    picture must say its point).
    O(total capacity) patches, so keep capacities small (a teaching cluster).
    """
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title must say what the picture shows (a non-empty str)")
    fig = Figure(figsize=figsize, dpi=100)
    ax = fig.add_subplot()
    ids = list(stats)
    tallest = max((s["capacity"] for s in stats.values()), default=1)
    for x, sid in enumerate(ids):
        s = stats[sid]
        for slot in range(s["capacity"]):
            busy = slot < s["current_load"]
            color = _DRAIN if s["is_draining"] and busy else (_BUSY if busy else _FREE)
            ax.add_patch(
                Rectangle(
                    (x - 0.35, slot), 0.7, 0.9, facecolor=color, edgecolor="#ffffff",
                    hatch="//" if s["is_draining"] else None,
                )
            )
        if sid == highlight:
            ax.add_patch(Rectangle((x - 0.42, -0.1), 0.84, s["capacity"] + 0.1, fill=False, edgecolor=_CHOSEN, linewidth=3))
        state = " draining" if s["is_draining"] else ""
        ax.text(x, -0.35, f"{sid}\n{s['gpu_memory_gb']} GB{state}\n{s['current_load']}/{s['capacity']}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.6, max(len(ids), 1) - 0.4)
    ax.set_ylim(-2.2, tallest + 0.3)
    ax.axis("off")
    if not ids:
        ax.text(0, tallest / 2, "no servers", ha="center", va="center")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes (Agg canvas; no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class CachedExplorer:
    """Base of the explorers that run one small seeded simulation per setting of their controls and redraw it.

    A subclass builds ``self.image`` (an ``ipywidgets.Image``), ``self.summary``
    (an ``HTML``), ``self.widget`` (the box shown), ``self._cache = {}`` and
    ``self.record = None``, and defines :meth:`setting` (the controls as a
    hashable key), :meth:`simulate` (the run for a key) and ``draw()``.
    A setting seen before is drawn from the cache, without simulating again.
    """

    def setting(self) -> tuple:
        """The current controls, as the key runs are cached under."""
        raise NotImplementedError

    def simulate(self, key: tuple) -> Any:
        """The run for ``key`` (may raise NotImplementedError: a candidate's stub stood in the way)."""
        raise NotImplementedError

    def run(self) -> Any:
        """Simulate the current setting (or take it from the cache) and redraw; returns the run (None: a stub stood in the way, and says so)."""
        started = time.perf_counter()
        key = self.setting()
        try:
            if key not in self._cache:
                self._cache[key] = self.simulate(key)
        except NotImplementedError as exc:  # the candidate's bundle: the stage's classes are not written yet
            self.record = None
            self.image.value = b""
            self.summary.value = f"<i>{html.escape(str(exc))}</i>"
            return None
        self.record = self._cache[key]
        self.simulated_ms = (time.perf_counter() - started) * 1000
        self.draw()
        return self.record

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
