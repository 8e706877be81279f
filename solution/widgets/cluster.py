"""Stage 1 playground: route, complete, drain and add servers, and see why.

Every action is applied to two balancers, the reference and the
implementation under test, and their answers are shown side by side; a
mismatch is highlighted.  The picture and the table show the reference's
cluster, with the server the rule would pick for the request size on the
slider and the criterion that decided.  With an unimplemented exercise the
playground runs on the reference alone.

In the candidate's bundle (no reference, no :mod:`solution.widgets.explain`)
it runs on the candidate's balancer alone, without the reasons; while that
is a stub it shows the initial cluster and says what to implement.

Each action costs one O(S log S) explanation and one small PNG render
(tens of milliseconds), so the widget answers well within a second.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import ipywidgets as W

import solution
from solution.checks.common import outcome
from solution.core.impl import reference_available
from solution.widgets.drawing import draw_cluster, figure_png

try:  # the stage-1 rule written plainly: not in the candidate's bundle
    from solution.widgets.explain import explain_route
except ImportError:  # pragma: no cover - exercised by tests/meta/test_bundle.py
    explain_route = None

__all__ = ["ClusterPlayground", "DEFAULT_SERVERS"]

#: (id, capacity, GPU memory in GB): a small mixed cluster.
DEFAULT_SERVERS: tuple[tuple[str, int, int], ...] = (
    ("h100", 6, 80),
    ("a100-80", 4, 80),
    ("a100-40", 4, 40),
    ("a10", 2, 24),
)


class ClusterPlayground:
    """An interactive stage-1 cluster: ``display(ClusterPlayground(impl))`` in a notebook.

    The methods :meth:`route`, :meth:`complete`, :meth:`drain`, :meth:`add`
    and :meth:`reset` are what the buttons call; scripts and tests can call
    them too.
    """

    def __init__(self, impl: ModuleType | None = None, servers: Sequence[tuple[str, int, int]] = DEFAULT_SERVERS) -> None:
        self.impl = impl
        self._servers = tuple(servers)
        self.log: list[str] = []
        self._build_controls()
        self.reset()

    # -- actions ------------------------------------------------------------------

    def reset(self, _: Any = None) -> None:
        """Start again from the initial cluster, on both sides."""
        self.reference: Any = solution.LoadBalancer() if reference_available() else None
        self.candidate: Any = None
        self.candidate_note = ""
        self._next_request = 1
        self._next_server = 1
        self.last_decision = ""
        self.log = []
        if self.impl is not None and self.impl is not solution:
            status, value = outcome(self.impl.LoadBalancer)
            if status == "ok":
                self.candidate = value
            elif self.reference is not None:
                self.candidate_note = f"your LoadBalancer() {value}: showing the reference alone"
            else:
                self.candidate_note = (f"your LoadBalancer() {value}: implement exercises/balancer.py (stage 1) to play "
                                       "here; until then this shows the cluster as it starts")  # fmt: skip
        for spec in self._servers:
            self._apply("add_server", spec)
        self.log = ["reset"]
        self._refresh()

    def route(self, estimated_tokens: int | None = None) -> None:
        """Route a new request of ``estimated_tokens`` (default: the slider's value)."""
        tokens = self.tokens.value if estimated_tokens is None else estimated_tokens
        request_id = f"req-{self._next_request}"
        self._next_request += 1
        plan = self._plan(tokens)
        ref, mine = self._apply("route_request", (request_id, tokens))
        if ref is None:
            decision = f"<b>{request_id}</b> ({tokens} tokens): yours &rarr; {_fmt(mine) if mine else 'nothing'}"
            self.last_decision = decision
            self._refresh()
            return
        decision = f"<b>{request_id}</b> ({tokens} tokens): reference &rarr; {_fmt(ref)}"
        if ref[0] == "ok" and plan is not None:
            decision += f" because <i>{html.escape(plan.decided_by)}</i>"
        if mine is not None:
            verdict = "" if mine == ref else " <b style='color:#c00'>MISMATCH</b>"
            decision += f" | yours &rarr; {_fmt(mine)}{verdict}"
        self.last_decision = decision
        self._refresh()

    def complete(self, request_id: str | None = None) -> None:
        """Complete an in-flight request (default: the one picked in the menu)."""
        request_id = request_id if request_id is not None else self.request_menu.value
        if request_id:
            self._apply("complete_request", (request_id,))
            self._refresh()

    def drain(self, server_id: str | None = None) -> None:
        """Drain a server (default: the one picked in the menu)."""
        server_id = server_id if server_id is not None else self.server_menu.value
        if server_id:
            self._apply("remove_server", (server_id,))
            self._refresh()

    def add(self, capacity: int | None = None, gpu_memory_gb: int | None = None) -> None:
        """Add a server named ``new-N`` (default: the sliders' capacity and memory)."""
        capacity = self.new_capacity.value if capacity is None else capacity
        memory = self.new_memory.value if gpu_memory_gb is None else gpu_memory_gb
        while f"new-{self._next_server}" in self._stats():
            self._next_server += 1
        self._apply("add_server", (f"new-{self._next_server}", capacity, memory))
        self._next_server += 1
        self._refresh()

    # -- plumbing -----------------------------------------------------------------

    def _apply(self, method: str, args: tuple[Any, ...]) -> tuple[tuple[str, Any] | None, tuple[str, Any] | None]:
        """Call ``method`` on both balancers and log the comparison.

        Returns the outcomes (see :func:`solution.checks.outcome`) of the
        reference and of the candidate (``None`` for a missing one).
        """
        ref = outcome(lambda: getattr(self.reference, method)(*args)) if self.reference is not None else None
        mine = outcome(lambda: getattr(self.candidate, method)(*args)) if self.candidate is not None else None
        if ref is None:
            line = f"{html.escape(method)}{html.escape(repr(args))}: " + (f"yours {_fmt(mine)}" if mine else "no balancer")
        else:
            line = f"{html.escape(method)}{html.escape(repr(args))}: reference {_fmt(ref)}"
            if mine is not None:
                line += f"; yours {_fmt(mine)}" + ("" if mine == ref else " <b style='color:#c00'>MISMATCH</b>")
        self.log.append(line)
        return ref, mine

    def _stats(self) -> dict[str, dict[str, Any]]:
        """The shown balancer's snapshot: the reference's, else the candidate's, else the initial cluster."""
        shown = self.reference if self.reference is not None else self.candidate
        if shown is not None:
            status, value = outcome(shown.get_server_stats)
            if status == "ok" and isinstance(value, dict):
                return value
        return {sid: {"capacity": cap, "current_load": 0, "gpu_memory_gb": mem, "load_ratio": 0.0, "is_draining": False,
                      "active_requests": []} for sid, cap, mem in self._servers}  # fmt: skip

    def _plan(self, tokens: int) -> Any:
        """The rule's explanation for a request of ``tokens`` (None without :mod:`solution.widgets.explain`)."""
        return explain_route(self._stats(), tokens) if explain_route is not None else None

    def _build_controls(self) -> None:
        self.tokens = W.IntSlider(value=500, min=1, max=16_000, step=1, description="tokens", continuous_update=False)
        self.route_button = W.Button(description="Route request", button_style="primary", icon="arrow-right")
        self.request_menu = W.Dropdown(description="request", options=[])
        self.complete_button = W.Button(description="Complete", icon="check")
        self.server_menu = W.Dropdown(description="server", options=[])
        self.drain_button = W.Button(description="Drain server", icon="sign-out", button_style="warning")
        self.new_capacity = W.IntSlider(value=4, min=1, max=8, description="capacity")
        self.new_memory = W.Dropdown(options=[24, 40, 48, 80], value=80, description="GPU GB")
        self.add_button = W.Button(description="Add server", icon="plus")
        self.reset_button = W.Button(description="Reset", icon="refresh")
        self.image = W.Image(format="png", layout=W.Layout(width="640px"))
        self.verdict = W.HTML()
        self.table = W.HTML()
        self.route_button.on_click(lambda _: self.route())
        self.complete_button.on_click(lambda _: self.complete())
        self.drain_button.on_click(lambda _: self.drain())
        self.add_button.on_click(lambda _: self.add())
        self.reset_button.on_click(self.reset)
        self.tokens.observe(lambda _: self._refresh(), names="value")
        self.widget = W.VBox(
            [
                W.HBox([self.tokens, self.route_button]),
                W.HBox([self.request_menu, self.complete_button]),
                W.HBox([self.server_menu, self.drain_button]),
                W.HBox([self.new_capacity, self.new_memory, self.add_button, self.reset_button]),
                W.HBox([self.image, self.table]),
                self.verdict,
            ]
        )

    def _refresh(self) -> None:
        stats = self._stats()
        plan = self._plan(self.tokens.value)
        if plan is not None:
            title = f"next request of {self.tokens.value} tokens -> {plan.chosen or 'NoCapacityError'}"
            self.image.value = figure_png(draw_cluster(stats, highlight=plan.chosen, title=title))
            self.table.value = _table(plan)
        else:
            title = "your balancer's cluster" if self.candidate is not None else "the cluster as it starts (no balancer to run yet)"
            self.image.value = figure_png(draw_cluster(stats, title=title))
            self.table.value = ""
        in_flight = [rid for s in stats.values() for rid in s["active_requests"]]
        _set_options(self.request_menu, in_flight)
        _set_options(self.server_menu, [sid for sid, s in stats.items() if not s["is_draining"]])
        lines = [f"<b>next request of {self.tokens.value} tokens:</b> {html.escape(plan.summary())}"] if plan is not None else []
        if self.last_decision:
            lines.append(f"last: {self.last_decision}")
        if self.candidate_note:
            lines.append(f"<i>{html.escape(self.candidate_note)}</i>")
        lines += [f"<code>{entry}</code>" for entry in self.log[-4:]]
        self.verdict.value = "<br>".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _set_options(menu: W.Dropdown, options: list[str]) -> None:
    """Refresh a menu's entries, keeping the picked one if it is still there, else picking the first,
    so "Complete" and "Drain server" always act on what the menu shows."""
    keep = menu.value
    menu.options = options
    menu.value = keep if keep in options else (options[0] if options else None)


def _fmt(result: tuple[str, Any]) -> str:
    status, value = result
    return html.escape(repr(value) if status == "ok" else f"raises {value}")


def _table(plan: Any) -> str:
    rows = [
        f"<tr style='background:{'#fde3c8' if i == 0 else 'white'}'><td>{html.escape(c.server_id)}</td>"
        f"<td>{c.current_load}/{c.capacity} = {float(c.load_ratio):.2f}</td><td>{c.gpu_memory_gb}</td><td>{c.free_slots}</td>"
        f"<td>{'chosen' if i == 0 else f'#{i + 1}'}</td></tr>"
        for i, c in enumerate(plan.ranking)
    ]
    rows += [
        f"<tr style='color:#888'><td>{html.escape(c.server_id)}</td><td>{c.current_load}/{c.capacity} = {float(c.load_ratio):.2f}</td>"
        f"<td>{c.gpu_memory_gb}</td><td>{c.free_slots}</td><td>{html.escape(c.excluded_because or '')}</td></tr>"
        for c in plan.excluded
    ]
    head = "<tr><th>server</th><th>load ratio</th><th>GB</th><th>free</th><th></th></tr>"
    return f"<table style='font-size:12px'>{head}{''.join(rows)}</table>"
