"""Call scripts: graded cases as data, their outcomes as data, and the comparison.

A *case* is a seeded or hand-written script: how to build the object under
test (``make``) and a list of calls (``ops``).  Running it on an
implementation gives a list of *steps*: first what building did, then, per
call, what the call did and what the stage's snapshot method returned after
it.  Every step is plain JSON (:func:`encode`), so a case can run in one
process and be judged in another: the grader's child process runs the
candidate's code and sends steps back; the parent, which never imports the
candidate's code, compares them with the reference's recorded steps
(:func:`first_difference`).  The check cells use the very same functions in
the notebook's kernel.

Comparison is strict: ``1`` and ``1.0`` differ, a tuple is not a list, a
``Fraction`` is not a float; a dict's order does not matter.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Case",
    "Group",
    "Harness",
    "Mismatch",
    "encode",
    "exception_kind",
    "decode",
    "outcome",
    "run_case",
    "first_difference",
    "show_value",
    "show_call",
]

#: The built-in exception classes a call may raise on purpose; a candidate may subclass them.
_KINDS = (TypeError, KeyError, ValueError, RuntimeError)


# -- values as JSON -------------------------------------------------------------------


def encode(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON that keeps Python's types apart.

    ``None``, booleans, ints, floats and strings stay as they are; lists stay
    lists; every other container is a one-key object that names its kind
    (``{"t": [...]}`` a tuple, ``{"d": [[k, v], ...]}`` a dict, ``{"q": "1/3"}``
    an exact fraction, ``{"o": "Dispatched", "f": {...}}`` a dataclass,
    ``{"e": "Ordering.FIFO"}`` an enum member, ``{"x": "SomeType"}`` anything
    else).  Depth is capped so a self-referencing value cannot recurse forever.
    """
    if _depth > 40:
        return {"x": "too deep"}
    if value is None or isinstance(value, (bool, str)) or type(value) in (int, float):
        return value
    nxt = _depth + 1
    if isinstance(value, list):
        return [encode(v, nxt) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"t": [encode(v, nxt) for v in value]}
    if isinstance(value, dict):
        return {"d": [[encode(k, nxt), encode(v, nxt)] for k, v in value.items()]}
    if isinstance(value, enum.Enum):
        return {"e": f"{type(value).__name__}.{value.name}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"o": type(value).__name__, "f": {f.name: encode(getattr(value, f.name), nxt) for f in dataclasses.fields(value)}}
    if isinstance(value, (set, frozenset)):
        return {"s": sorted((encode(v, nxt) for v in value), key=json.dumps)}
    if isinstance(value, numbers.Rational) and not isinstance(value, int):
        return {"q": f"{value.numerator}/{value.denominator}"}
    if isinstance(value, int):  # an int subclass other than bool
        return {"x": type(value).__name__, "v": int(value)}
    return {"x": type(value).__name__}


def decode(data: Any) -> Any:
    """The Python value :func:`encode` made ``data`` from (dataclasses and enums come back as
    ``("Name", {fields})`` tuples and ``"Cls.NAME"`` strings: enough to call and to show)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "t" in data:
        return tuple(decode(v) for v in data["t"])
    if "d" in data:
        return {_hashable(decode(k)): decode(v) for k, v in data["d"]}
    return data  # q, o, e, s, x stay tagged: they are only compared and shown


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def same(a: Any, b: Any) -> bool:
    """Strict equality of two encoded values: types must match, dicts ignore order, NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return False
        if "d" in a:
            da, db = _pairs(a["d"]), _pairs(b["d"])
            return da.keys() == db.keys() and all(same(da[k], db[k]) for k in da)
        return all(same(a[k], b[k]) for k in a)
    return a == b


def _pairs(items: list[list[Any]]) -> dict[str, Any]:
    return {json.dumps(k, sort_keys=True): v for k, v in items}


def show_value(data: Any, limit: int = 120) -> str:
    """A short, readable rendering of an encoded value."""
    text = _show(data)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(data: Any) -> str:
    if isinstance(data, list):
        return "[" + ", ".join(_show(v) for v in data) + "]"
    if not isinstance(data, dict):
        return repr(data)
    if "t" in data:
        inner = ", ".join(_show(v) for v in data["t"])
        return f"({inner},)" if len(data["t"]) == 1 else f"({inner})"
    if "d" in data:
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in data["d"]) + "}"
    if "o" in data:
        return f"{data['o']}(" + ", ".join(f"{k}={_show(v)}" for k, v in data["f"].items()) + ")"
    if "q" in data:
        return f"Fraction({data['q']})"
    if "e" in data:
        return data["e"]
    if "s" in data:
        return "{" + ", ".join(_show(v) for v in data["s"]) + "}"
    return f"<{data.get('x')}>"


# -- outcomes -------------------------------------------------------------------------


def outcome(call: Callable[[], Any], args: Sequence[Any] = ()) -> list[Any]:
    """What a call did, as JSON: ``["ok", value]`` or ``["raised", kind, facts]``.

    ``kind`` is the built-in class the exception is an instance of
    (``"KeyError"``, ...), so a candidate may raise subclasses of its own;
    ``NotImplementedError`` and unexpected exceptions keep their name and
    message (and carry no facts).  ``facts`` say what the message holds (see
    :func:`message_facts`); they are compared only in the cases of an
    error-message rule group (:attr:`Case.messages`).
    """
    try:
        return ["ok", encode(call())]
    except Exception as exc:  # a candidate's bug too: report it, never crash the check
        kind = exception_kind(exc)
        return ["raised", kind, message_facts(exc, args)] if kind else ["raised", f"{type(exc).__name__}({_short(exc)})"]


def exception_kind(exc: BaseException) -> str | None:
    """The built-in kind of a deliberate error (``"KeyError"``, ...), or None for one that is not.

    ``NotImplementedError`` (a stub) and ``RecursionError`` (a runaway) are
    ``RuntimeError`` subclasses but never an answer: a stub or an endless
    recursion must not pass for ``NoCapacityError``.
    """
    if isinstance(exc, (NotImplementedError, RecursionError)):
        return None
    return next((kind.__name__ for kind in _KINDS if isinstance(exc, kind)), None)


#: Argument names a message about a bad value may name.
ARGUMENT_NAMES = ("estimated_tokens", "priority", "request_id", "server_id", "capacity", "gpu_memory_gb")


def message_facts(exc: BaseException, args: Sequence[Any]) -> dict[str, Any]:
    """What an error message holds: the call's string arguments it quotes as ``repr`` writes them,
    the argument names it mentions, and its number of words."""
    first = exc.args[0] if exc.args else ""
    text = first if isinstance(first, str) else str(exc)
    quotes = sorted({repr(a) for a in args if isinstance(a, str) and a and repr(a) in text})
    return {"quotes": quotes, "names": [n for n in ARGUMENT_NAMES if n in text], "words": len(text.split())}


def message_problem(got: Sequence[Any], want: Sequence[Any]) -> str:
    """Why an error message breaks the course's message rules ('' when it does not), judged against the reference's.

    An error about an id (the reference's message quotes it) must quote the
    same ids as ``repr`` writes them and have at least six words; an error
    about a bad value (it quotes no id) must name the argument(s) the
    reference's names.
    """
    g, w = (got[2] if len(got) > 2 else {}), (want[2] if len(want) > 2 else {})
    if w.get("quotes"):
        missing = [q for q in w["quotes"] if q not in g.get("quotes", [])]
        if missing:
            return f"its message does not quote {', '.join(missing)} (quote the id as repr writes it)"
        if g.get("words", 0) < 6:
            return f"its message has {g.get('words', 0)} words (at least six, saying what to do next)"
        return ""
    missing = [n for n in w.get("names", []) if n not in g.get("names", [])]
    return f"its message does not name {', '.join(missing)} (name the argument that is wrong)" if missing else ""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 100 else text[:97] + "..."


def show_outcome(result: Sequence[Any]) -> str:
    status, value = result[0], result[1]
    return f"returned {show_value(value)}" if status == "ok" else f"raised {value}"


def show_call(op: Sequence[Any]) -> str:
    name, args = op
    return f"{name}({', '.join(show_value(encode(a), 60) for a in args)})"


# -- cases ----------------------------------------------------------------------------


class Harness(Protocol):
    """How one stage builds its object under test and looks at it."""

    stage: int
    snapshot: str  # the method called after every op

    def build(self, impl: Any, make: Any) -> Any: ...


@dataclass(frozen=True)
class Case:
    """One graded script: ``make`` (how to build) and ``ops`` (the calls), with an id.

    ``messages``: the case belongs to an error-message rule group, so the
    messages of the errors it raises are judged too (:func:`message_problem`);
    elsewhere only the kind of an error counts.
    """

    id: str
    make: Any
    ops: tuple[tuple[str, tuple[Any, ...]], ...]
    messages: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, "make": encode(self.make), "ops": [[name, [encode(a) for a in args]] for name, args in self.ops]}
        return dict(data, messages=True) if self.messages else data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        ops = tuple((name, tuple(decode(a) for a in args)) for name, args in data["ops"])
        return cls(data["id"], decode(data["make"]), ops, bool(data.get("messages", False)))


@dataclass(frozen=True)
class Group:
    """A rule group: a name the notebook teaches, and its cases."""

    name: str
    cases: tuple[Case, ...] = field(default_factory=tuple)


def run_case(harness: Harness, impl: Any, case: Case) -> list[Any]:
    """Run ``case`` on ``impl``; return its steps (JSON), never raising for the implementation's faults.

    Step 0 is what building did (``["ok", null]`` on success); step ``i`` is
    ``[outcome of call i, outcome of the snapshot after it]``.
    """
    built_obj: list[Any] = []

    def build() -> None:
        built_obj.append(harness.build(impl, case.make))

    built = outcome(build)
    steps: list[Any] = [built]
    if built[0] != "ok":
        return steps
    obj = built_obj[0]
    snapshot = getattr(harness, "snapshot", None)
    for name, args in case.ops:
        result = outcome(lambda: getattr(obj, name)(*args), args)
        seen = outcome(lambda: getattr(obj, snapshot)()) if snapshot else ["ok", None]
        steps.append([result, seen])
    return steps


@dataclass(frozen=True)
class Mismatch:
    """Where a run first differs from the reference's: the calls up to it, and what differs."""

    ops: tuple[tuple[str, tuple[Any, ...]], ...]
    what: str
    state_before: str = ""  # the snapshot both agreed on before the differing call

    def describe(self) -> str:
        shown = list(self.ops[:-1])
        before = "; ".join(show_call(op) for op in shown[-8:])
        if len(shown) > 8:
            before = f"... {len(shown) - 8} earlier calls; " + before
        text = self.what + (f" after {before}" if before else "")
        return text + (f" (state before the call: {self.state_before})" if self.state_before else "")


def first_difference(case: Case, got: Sequence[Any], want: Sequence[Any], snapshot: str = "snapshot") -> Mismatch | None:
    """The first step where ``got`` differs from ``want`` (the reference's), naming what differs."""
    if not got:
        return Mismatch((), "no result (the run ended before this case)")
    if not same(got[0][:2], want[0][:2]):
        theirs = "builds" if want[0][0] == "ok" else f"raises {want[0][1]}"
        return Mismatch((), f"building the object under test {show_outcome(got[0])}; the reference's {theirs}")
    for i, op in enumerate(case.ops, start=1):
        prefix = case.ops[:i]
        before = show_value(want[i - 1][1][1], 300) if i > 1 and want[i - 1][1][0] == "ok" else ""
        if i >= len(got):
            return Mismatch(prefix, f"{show_call(op)}: no result (the run stopped here)", before)
        (g_res, g_snap), (w_res, w_snap) = got[i], want[i]
        if not same(g_res[:2], w_res[:2]):
            return Mismatch(prefix, f"{show_call(op)} {show_outcome(g_res)}, the reference {show_outcome(w_res)}", before)
        problem = message_problem(g_res, w_res) if case.messages and w_res[0] == "raised" else ""
        if problem:
            return Mismatch(prefix, f"{show_call(op)} raised {w_res[1]} as it should, but {problem}", before)
        if not same(g_snap if g_snap[0] == "ok" else g_snap[:2], w_snap if w_snap[0] == "ok" else w_snap[:2]):
            if g_snap[0] == "ok" and w_snap[0] == "ok":
                fields = "; ".join(f"{path}: {show_value(a, 60)}, the reference {show_value(b, 60)}" for path, a, b in differing_fields(g_snap[1], w_snap[1]))
                what = f"after {show_call(op)}, {snapshot}() differs: {fields}"
            else:
                what = f"after {show_call(op)}, {snapshot}() {show_outcome(g_snap)}, the reference {show_outcome(w_snap)}"
            return Mismatch(prefix, what, before)
    return None


def differing_fields(a: Any, b: Any, path: str = "", limit: int = 3) -> list[tuple[str, Any, Any]]:
    """Up to ``limit`` (path, got, want) triples where two encoded values differ."""
    if same(a, b):
        return []
    if isinstance(a, dict) and isinstance(b, dict) and "d" in a and "d" in b:
        da, db = _pairs(a["d"]), _pairs(b["d"])
        out: list[tuple[str, Any, Any]] = []
        for key in list(db) + [k for k in da if k not in db]:
            name = f"{path}[{show_value(json.loads(key), 40)}]"
            if key not in da:
                out.append((name, {"x": "missing"}, db[key]))
            elif key not in db:
                out.append((name, da[key], {"x": "missing"}))
            else:
                out += differing_fields(da[key], db[key], name, limit)
            if len(out) >= limit:
                break
        return out[:limit]
    if isinstance(a, dict) and isinstance(b, dict) and "o" in a and "o" in b and a["o"] == b["o"]:
        out = []
        for key in b["f"]:
            out += differing_fields(a["f"].get(key), b["f"][key], f"{path}.{key}", limit)
        return out[:limit]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differing_fields(x, y, f"{path}[{i}]", limit)
        return out[:limit]
    return [(path or "value", a, b)]
