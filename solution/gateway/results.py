"""The HTTP race's recorded results: one JSON file, validated when read, printed as tables.

The full race takes about an hour on a 2-core machine, so notebook 08 does
not run it: it reads the figures :func:`solution.gateway.race.main` wrote
with ``--json`` (:data:`RESULTS_PATH`), prints them with :func:`table` and
quotes the command that reproduces each part.

The file holds *parts*, each written by one command (a later run of the
same part replaces it, the others stay)::

    {"schema": 1,
     "notes": {"throttled_gpu": "...", ...},          # explanations, keyed by topic
     "parts": {"steady": {...}, "crash": {...}, ..., "overhead": {...}, "storm": {...}}}

Every part records ``command`` (the exact command line), ``machine``
(``cores``, ``load_average`` at the start: 1, 5, 15 minutes, ``date``
UTC ISO 8601, ``commit`` of the code that ran and ``dirty``),
``took_seconds`` and ``preliminary`` (quick runs with fewer requests or
seeds).  ``dirty`` means the code under ``solution/`` differed from the
commit; the results files (which the runs themselves update) do not count.  By kind (:data:`PART_KINDS`):

* ``race`` (``steady``, ``crash``, ``hang``, ``slow``, ``drain``,
  ``azure``, ``slow_h100``, and ``steady_estimates`` / ``azure_estimates``:
  ``steady`` / ``azure`` with the gateway routing on the simulator's noisy
  output estimates instead of the true ``max_tokens``): ``config`` (the race's arguments), ``rows`` (per balancer:
  ``balancer``, ``runs``, ``sent``, ``ok``, ``errors`` by kind, and each
  figure of :data:`RACE_FIGURES` as ``[mean, low, high]``, a 95% t interval
  over the seeds; ``null`` for a figure with no value, e.g. no answer),
  ``simulator`` (the simulator's rows on the same requests: ``balancer``,
  ``runs``, ``sent``, ``ok`` and the figures of :data:`SIM_FIGURES`) and ``per_seed`` (``balancer``, ``seed``, ``ok``,
  ``sent``, ``e2e_p99``, ``ttft_p99``, ``shares`` by server).  Latencies in
  seconds, throughput in answers per second.
* ``overhead``: ``requests``, ``p50_ms``, ``p99_ms`` by target (``direct``,
  ``gateway``, ``haproxy``), ``added_p50_ms`` / ``added_p99_ms`` (a
  balancer's minus direct), ``cpu_ms_per_request`` and ``ratio``
  (gateway / HAProxy: ``added_p50``, ``added_p99``, ``cpu``; ``null`` when
  HAProxy's added time is within the noise).
* ``capacity``: ``concurrency``, ``servers``, ``rps``, ``errors``,
  ``cpu_ms_per_request`` by target and ``ratio`` (``rps``: gateway /
  HAProxy, ``rps_vs_direct``: gateway / direct, ``cpu``: gateway / HAProxy).
* ``storm``: ``config`` and ``rows`` (``policy``, ``fraction`` of attempts
  the servers fail, ``runs``, ``requests`` sent by clients,
  ``attempts_per_request`` and ``success_rate`` as ``[mean, low, high]``),
  and ``simulator`` (optional: the same rows from the simulator on the
  same requests, :func:`solution.sim.retrystorm.storm_on`).

:func:`load` checks all of it and raises ``ValueError`` naming the field
(``parts.steady.rows[2].e2e_p99: ...``); :func:`record_part` validates a
part before it replaces the old one, so a bad run never lands in the file.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "RESULTS_PATH", "SCHEMA", "PART_KINDS", "RACE_FIGURES", "SIM_FIGURES", "TARGETS",
    "Machine", "RaceRowFigures", "SimRow", "SeedRow", "RacePart", "OverheadPart", "CapacityPart",
    "StormRow", "StormPart", "RaceResults", "load", "parse", "table", "markdown", "machine", "record_part", "set_note", "main",
]  # fmt: skip

#: The recorded results, committed beside this module.
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "stage8_race.json"

#: The file format's version (``"schema"``).
SCHEMA = 1

#: Each part's name -> its kind.
PART_KINDS: Mapping[str, str] = MappingProxyType({
    "steady": "race", "crash": "race", "hang": "race", "slow": "race", "drain": "race", "azure": "race",
    "slow_h100": "race",  # the throttle on the server the token-aware strategy leans on (see the notes)
    # the same races with the gateway routing on the simulator's noisy output estimates (race --estimates), not max_tokens
    "steady_estimates": "race", "azure_estimates": "race",
    "overhead": "overhead", "capacity": "capacity", "storm": "storm",
})  # fmt: skip

#: A race row's figures, each ``(mean, low, high)`` over the seeds (seconds; throughput in answers/s).
RACE_FIGURES = ("throughput", "ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99", "added_p50", "added_p99")

#: A simulator row's figures (wall seconds: model seconds times the race's time scale).
SIM_FIGURES = ("throughput", "ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99")

#: The targets of the overhead and capacity parts.
TARGETS = ("direct", "gateway", "haproxy")

Interval = tuple[float, float, float]


# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """Where and when a part ran: cores, load average at its start (1, 5, 15 min), UTC date, git commit."""

    cores: int
    load_average: tuple[float, float, float]
    date: str
    commit: str
    dirty: bool = False


@dataclass(frozen=True)
class RaceRowFigures:
    """One balancer over the seeds: answers, errors by kind and :data:`RACE_FIGURES` as (mean, low, high)."""

    balancer: str
    runs: int
    sent: int
    ok: int
    errors: Mapping[str, int]
    figures: Mapping[str, Interval]


@dataclass(frozen=True)
class SimRow:
    """The simulator on the same requests: :data:`SIM_FIGURES` as (mean, low, high)."""

    balancer: str
    runs: int
    sent: int
    ok: int
    figures: Mapping[str, Interval]


@dataclass(frozen=True)
class SeedRow:
    """One balancer's run with one seed (to see which seeds move a figure)."""

    balancer: str
    seed: int
    ok: int
    sent: int
    e2e_p99: float
    ttft_p99: float
    shares: Mapping[str, int]


@dataclass(frozen=True)
class _Part:
    command: str
    machine: Machine
    took_seconds: float
    preliminary: bool


@dataclass(frozen=True)
class RacePart(_Part):
    """A race (steady state, a fault, or the Azure trace): balancers' rows, the simulator's, per-seed rows."""

    config: Mapping[str, Any] = field(default_factory=dict)
    rows: tuple[RaceRowFigures, ...] = ()
    simulator: tuple[SimRow, ...] = ()
    per_seed: tuple[SeedRow, ...] = ()

    def row(self, balancer: str) -> RaceRowFigures:
        """The row of ``balancer`` (KeyError listing the balancers when absent)."""
        for r in self.rows:
            if r.balancer == balancer:
                return r
        raise KeyError(f"no row {balancer!r}; rows: {[r.balancer for r in self.rows]}")


@dataclass(frozen=True)
class OverheadPart(_Part):
    """What one hop adds per request, one request at a time (milliseconds), and the gateway/HAProxy ratios."""

    requests: Mapping[str, int] = field(default_factory=dict)
    p50_ms: Mapping[str, float] = field(default_factory=dict)
    p99_ms: Mapping[str, float] = field(default_factory=dict)
    added_p50_ms: Mapping[str, float] = field(default_factory=dict)
    added_p99_ms: Mapping[str, float] = field(default_factory=dict)
    cpu_ms_per_request: Mapping[str, float] = field(default_factory=dict)
    ratio: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CapacityPart(_Part):
    """Requests per second with many closed-loop clients, by target, and the ratios."""

    concurrency: int = 0
    servers: int = 0
    rps: Mapping[str, float] = field(default_factory=dict)
    errors: Mapping[str, int] = field(default_factory=dict)
    cpu_ms_per_request: Mapping[str, float] = field(default_factory=dict)
    ratio: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StormRow:
    """One retry policy on a sick fleet: attempts reaching the servers per client request, and client success."""

    policy: str
    fraction: float
    runs: int
    requests: int
    attempts_per_request: Interval
    success_rate: Interval


@dataclass(frozen=True)
class StormPart(_Part):
    """The retry storm over HTTP (servers fail a fraction of attempts)."""

    config: Mapping[str, Any] = field(default_factory=dict)
    rows: tuple[StormRow, ...] = ()
    simulator: tuple[StormRow, ...] = ()


@dataclass(frozen=True)
class RaceResults:
    """The whole file: its parts by name and the notes that explain them."""

    parts: Mapping[str, _Part]
    notes: Mapping[str, str]
    schema: int = SCHEMA

    def part(self, name: str) -> Any:
        """The part ``name`` (KeyError naming the parts present when absent)."""
        if name not in self.parts:
            raise KeyError(f"no part {name!r} in the results; parts: {sorted(self.parts)}")
        return self.parts[name]


# -- validation ------------------------------------------------------------------------------------


def _fail(where: str, what: str) -> ValueError:
    return ValueError(f"{where}: {what}")


def _obj(value: object, where: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be an object, got {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise _fail(where, f"missing field(s) {missing}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"must be a non-empty string, got {value!r}")
    return value


def _int(value: object, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be an int >= {minimum}, got {value!r}")
    return value


def _num(value: object, where: str, *, null: bool = False) -> float:
    if value is None and null:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, f"must be a finite number{' or null' if null else ''}, got {value!r}")
    return float(value)


def _interval(value: object, where: str) -> Interval:
    """``[mean, low, high]`` with low <= mean <= high, or ``null`` (no value: NaN, NaN, NaN)."""
    if value is None:
        return (math.nan, math.nan, math.nan)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise _fail(where, f"must be [mean, low, high] or null, got {value!r}")
    mean, low, high = (_num(v, f"{where}[{i}]") for i, v in enumerate(value))
    if not low - 1e-9 <= mean <= high + 1e-9:
        raise _fail(where, f"must have low <= mean <= high, got {value!r}")
    return (mean, low, high)


def _counts(value: object, where: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be an object of counts, got {type(value).__name__}")
    return {_str(k, where): _int(v, f"{where}.{k}") for k, v in value.items()}


def _by_target(value: object, where: str, targets: Sequence[str] = TARGETS, *, null: bool = False) -> dict[str, float]:
    data = _obj(value, where, targets)
    return {t: _num(data[t], f"{where}.{t}", null=null) for t in targets}


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"must be a list, got {type(value).__name__}")
    return value


def _machine(value: object, where: str) -> Machine:
    data = _obj(value, where, ("cores", "load_average", "date", "commit"))
    la = _list(data["load_average"], f"{where}.load_average")
    if len(la) != 3:
        raise _fail(f"{where}.load_average", f"must hold 3 numbers (1, 5, 15 minutes), got {la!r}")
    date = _str(data["date"], f"{where}.date")
    try:
        datetime.fromisoformat(date)
    except ValueError:
        raise _fail(f"{where}.date", f"must be an ISO 8601 date, got {date!r}") from None
    dirty = data.get("dirty", False)
    if not isinstance(dirty, bool):
        raise _fail(f"{where}.dirty", f"must be true or false, got {dirty!r}")
    return Machine(_int(data["cores"], f"{where}.cores", 1), tuple(_num(x, f"{where}.load_average[{i}]") for i, x in enumerate(la)),  # type: ignore[arg-type]
                   date, _str(data["commit"], f"{where}.commit"), dirty)  # fmt: skip


def _common(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    preliminary = data.get("preliminary", False)
    if not isinstance(preliminary, bool):
        raise _fail(f"{where}.preliminary", f"must be true or false, got {preliminary!r}")
    took = _num(data["took_seconds"], f"{where}.took_seconds")
    if took < 0:
        raise _fail(f"{where}.took_seconds", f"must be >= 0, got {took}")
    return {"command": _str(data["command"], f"{where}.command"), "machine": _machine(data["machine"], f"{where}.machine"),
            "took_seconds": took, "preliminary": preliminary}  # fmt: skip


def _race_part(data: Mapping[str, Any], where: str) -> RacePart:
    _obj(data, where, ("config", "rows", "simulator", "per_seed"))
    config = _obj(data["config"], f"{where}.config", ("requests", "seeds", "fault"))
    seeds = _list(config["seeds"], f"{where}.config.seeds")
    if not seeds:
        raise _fail(f"{where}.config.seeds", "must name at least one seed")
    for i, s in enumerate(seeds):
        _int(s, f"{where}.config.seeds[{i}]")
    rows = []
    for i, raw in enumerate(_list(data["rows"], f"{where}.rows")):
        w = f"{where}.rows[{i}]"
        r = _obj(raw, w, ("balancer", "runs", "sent", "ok", "errors", *RACE_FIGURES))
        sent, ok = _int(r["sent"], f"{w}.sent"), _int(r["ok"], f"{w}.ok")
        if ok > sent:
            raise _fail(f"{w}.ok", f"must be <= sent ({sent}), got {ok}")
        rows.append(RaceRowFigures(_str(r["balancer"], f"{w}.balancer"), _int(r["runs"], f"{w}.runs", 1), sent, ok,
                                   MappingProxyType(_counts(r["errors"], f"{w}.errors")),
                                   MappingProxyType({k: _interval(r[k], f"{w}.{k}") for k in RACE_FIGURES})))  # fmt: skip
    if not rows:
        raise _fail(f"{where}.rows", "must hold at least one balancer's row")
    names = [r.balancer for r in rows]
    if len(set(names)) != len(names):
        raise _fail(f"{where}.rows", f"balancers must be distinct, got {names}")
    sims = []
    for i, raw in enumerate(_list(data["simulator"], f"{where}.simulator")):
        w = f"{where}.simulator[{i}]"
        r = _obj(raw, w, ("balancer", "runs", "sent", "ok", *SIM_FIGURES))
        sent, ok = _int(r["sent"], f"{w}.sent"), _int(r["ok"], f"{w}.ok")
        if ok > sent:
            raise _fail(f"{w}.ok", f"must be <= sent ({sent}), got {ok}")
        sims.append(SimRow(_str(r["balancer"], f"{w}.balancer"), _int(r["runs"], f"{w}.runs", 1), sent, ok,
                           MappingProxyType({k: _interval(r[k], f"{w}.{k}") for k in SIM_FIGURES})))  # fmt: skip
    seeds_rows = []
    for i, raw in enumerate(_list(data["per_seed"], f"{where}.per_seed")):
        w = f"{where}.per_seed[{i}]"
        r = _obj(raw, w, ("balancer", "seed", "ok", "sent", "e2e_p99", "ttft_p99", "shares"))
        seeds_rows.append(SeedRow(_str(r["balancer"], f"{w}.balancer"), _int(r["seed"], f"{w}.seed"), _int(r["ok"], f"{w}.ok"),
                                  _int(r["sent"], f"{w}.sent"), _num(r["e2e_p99"], f"{w}.e2e_p99", null=True),
                                  _num(r["ttft_p99"], f"{w}.ttft_p99", null=True),
                                  MappingProxyType(_counts(r["shares"], f"{w}.shares"))))  # fmt: skip
    return RacePart(**_common(data, where), config=MappingProxyType(dict(config)), rows=tuple(rows), simulator=tuple(sims),
                    per_seed=tuple(seeds_rows))  # fmt: skip


def _overhead_part(data: Mapping[str, Any], where: str) -> OverheadPart:
    _obj(data, where, ("requests", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "cpu_ms_per_request", "ratio"))
    requests = _obj(data["requests"], f"{where}.requests", TARGETS)
    ratio = _obj(data["ratio"], f"{where}.ratio", ("added_p50", "added_p99", "cpu"))
    return OverheadPart(**_common(data, where),
                        requests=MappingProxyType({t: _int(requests[t], f"{where}.requests.{t}", 1) for t in TARGETS}),
                        p50_ms=MappingProxyType(_by_target(data["p50_ms"], f"{where}.p50_ms")),
                        p99_ms=MappingProxyType(_by_target(data["p99_ms"], f"{where}.p99_ms")),
                        added_p50_ms=MappingProxyType(_by_target(data["added_p50_ms"], f"{where}.added_p50_ms", TARGETS[1:])),
                        added_p99_ms=MappingProxyType(_by_target(data["added_p99_ms"], f"{where}.added_p99_ms", TARGETS[1:])),
                        cpu_ms_per_request=MappingProxyType(_by_target(data["cpu_ms_per_request"], f"{where}.cpu_ms_per_request")),
                        ratio=MappingProxyType({k: _num(ratio[k], f"{where}.ratio.{k}", null=True) for k in ("added_p50", "added_p99", "cpu")}))  # fmt: skip


def _capacity_part(data: Mapping[str, Any], where: str) -> CapacityPart:
    _obj(data, where, ("concurrency", "servers", "rps", "errors", "cpu_ms_per_request", "ratio"))
    ratio = _obj(data["ratio"], f"{where}.ratio", ("rps", "rps_vs_direct", "cpu"))
    errors = _counts(data["errors"], f"{where}.errors")
    if set(errors) != set(TARGETS):
        raise _fail(f"{where}.errors", f"must count errors of {list(TARGETS)}, got {sorted(errors)}")
    return CapacityPart(**_common(data, where), concurrency=_int(data["concurrency"], f"{where}.concurrency", 1),
                        servers=_int(data["servers"], f"{where}.servers", 1),
                        rps=MappingProxyType(_by_target(data["rps"], f"{where}.rps")), errors=MappingProxyType(errors),
                        cpu_ms_per_request=MappingProxyType(_by_target(data["cpu_ms_per_request"], f"{where}.cpu_ms_per_request")),
                        ratio=MappingProxyType({k: _num(ratio[k], f"{where}.ratio.{k}", null=True) for k in ("rps", "rps_vs_direct", "cpu")}))  # fmt: skip


def _storm_rows(value: object, where: str) -> tuple[StormRow, ...]:
    rows = []
    for i, raw in enumerate(_list(value, where)):
        w = f"{where}[{i}]"
        r = _obj(raw, w, ("policy", "fraction", "runs", "requests", "attempts_per_request", "success_rate"))
        fraction = _num(r["fraction"], f"{w}.fraction")
        if not 0 <= fraction <= 1:
            raise _fail(f"{w}.fraction", f"must be in [0, 1], got {fraction}")
        success = _interval(r["success_rate"], f"{w}.success_rate")
        if not all(math.isnan(x) or -1e-9 <= x <= 1 + 1e-9 for x in success[:1]):
            raise _fail(f"{w}.success_rate", f"must be a share in [0, 1], got {success}")
        rows.append(StormRow(_str(r["policy"], f"{w}.policy"), fraction, _int(r["runs"], f"{w}.runs", 1),
                             _int(r["requests"], f"{w}.requests", 1), _interval(r["attempts_per_request"], f"{w}.attempts_per_request"),
                             success))  # fmt: skip
    return tuple(rows)


def _storm_part(data: Mapping[str, Any], where: str) -> StormPart:
    _obj(data, where, ("config", "rows"))
    config = _obj(data["config"], f"{where}.config", ())
    rows = _storm_rows(data["rows"], f"{where}.rows")
    if not rows:
        raise _fail(f"{where}.rows", "must hold at least one policy's row")
    sims = _storm_rows(data.get("simulator", []), f"{where}.simulator")
    return StormPart(**_common(data, where), config=MappingProxyType(dict(config)), rows=rows, simulator=sims)


_PARSERS = {"race": _race_part, "overhead": _overhead_part, "capacity": _capacity_part, "storm": _storm_part}


def _part(name: str, value: object) -> _Part:
    if name not in PART_KINDS:
        raise _fail(f"parts.{name}", f"unknown part; parts are {list(PART_KINDS)}")
    where = f"parts.{name}"
    data = _obj(value, where, ("command", "machine", "took_seconds"))
    return _PARSERS[PART_KINDS[name]](data, where)


def parse(document: object) -> RaceResults:
    """Validate a decoded results document and return it as :class:`RaceResults`.  O(size of the document).

    Raises:
        ValueError: a missing or malformed field; the message names it (``parts.crash.rows[0].e2e_p99: ...``).
    """
    data = _obj(document, "results", ("schema", "parts"))
    if data["schema"] != SCHEMA:
        raise _fail("schema", f"must be {SCHEMA}, got {data['schema']!r}")
    parts = _obj(data["parts"], "parts", ())
    notes = _obj(data.get("notes", {}), "notes", ())
    return RaceResults(MappingProxyType({name: _part(name, value) for name, value in parts.items()}),
                       MappingProxyType({_str(k, "notes"): _str(v, f"notes.{k}") for k, v in notes.items()}))  # fmt: skip


def load(path: str | os.PathLike[str] = RESULTS_PATH) -> RaceResults:
    """Read and validate a results file (see the module for its fields).

    Raises:
        FileNotFoundError: no file at ``path`` (run ``python -m solution.gateway.race ... --json PATH``).
        ValueError: not JSON, or a field missing or malformed (the message names it).
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return parse(document)


# -- writing ---------------------------------------------------------------------------------------


def machine(repo: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``machine`` record of a part starting now: cores, load average, UTC date, the code's git commit.

    ``repo`` defaults to the tree this module was imported from (a git
    worktree at a fixed commit when the race runs from one).  ``commit`` is
    ``"unknown"`` outside a git checkout.
    """
    root = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    # dirty: the code differs from the commit (the results files, which the runs themselves update, do not count)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "solution", ":!solution/gateway/results")) \
        if commit != "unknown" else False
    return {"cores": os.cpu_count() or 1, "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit, "dirty": dirty}  # fmt: skip


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither); tuples lists; mappings dicts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _update(path: Path, change: Any) -> RaceResults:
    """Read-modify-write ``path`` under an exclusive lock (two races may finish at once); validate before writing."""
    import hashlib
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]  # the lock lives outside the repository
    with open(Path(tempfile.gettempdir()) / f"lb-race-results-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"schema": SCHEMA, "notes": {}, "parts": {}}
        change(document)
        document = _jsonable(document)
        results = parse(document)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return results


def record_part(path: str | os.PathLike[str], name: str, part: Mapping[str, Any]) -> RaceResults:
    """Write ``part`` as ``parts[name]`` of the file at ``path`` (created if absent), keeping the other parts.

    NaN figures are written as ``null``.  The whole document is validated
    before anything is written, so a malformed part leaves the file as it
    was (ValueError naming the field).
    """
    if name not in PART_KINDS:
        raise ValueError(f"name: unknown part {name!r}; parts are {list(PART_KINDS)}")

    def change(document: dict[str, Any]) -> None:
        document.setdefault("parts", {})[name] = dict(part)

    return _update(Path(path), change)


def set_note(path: str | os.PathLike[str], key: str, text: str) -> RaceResults:
    """Set ``notes[key]`` of the file at ``path`` to ``text`` (an explanation of a finding)."""
    _str(key, "key")
    _str(text, "text")

    def change(document: dict[str, Any]) -> None:
        document.setdefault("notes", {})[key] = text

    return _update(Path(path), change)


# -- tables ----------------------------------------------------------------------------------------


def _cell(x: Interval, scale: float = 1.0, digits: int = 2) -> str:
    """``mean [low, high]`` (one value when the interval is a point; ``-`` when there is none)."""
    mean, low, high = (v * scale for v in x)
    if math.isnan(mean):
        return "-"
    if low == high:
        return f"{mean:,.{digits}f}"
    return f"{mean:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def _errors(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    return "0" if not total else f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


def table(results: RaceResults, part: str) -> list[dict[str, str]]:
    """Rows ready to print (``pandas.DataFrame(rows)`` or markdown): one per balancer, target or policy.

    Race parts: ``balancer``, ``ok/sent``, ``req/s``, ``TTFT p50 (ms)``,
    ``TTFT p99 (ms)``, ``e2e p50 (s)``, ``e2e p99 (s)``, ``errors`` (mean
    [95% interval] over the seeds), then the simulator's rows (``errors``: ``none modelled``, or the
    requests it turned away: it has no queue).  ``overhead``/``capacity``: one row
    per target and a ``gateway / HAProxy`` row of ratios.  ``storm``: one
    row per policy and fraction, then the simulator's (``simulator: <policy>``).  O(rows).

    Raises:
        KeyError: no such part in ``results``.
    """
    p = results.part(part)
    if isinstance(p, RacePart):
        rows = [{"balancer": r.balancer, "ok/sent": f"{r.ok}/{r.sent}", "req/s": _cell(r.figures["throughput"]),
                 "TTFT p50 (ms)": _cell(r.figures["ttft_p50"], 1e3, 0), "TTFT p99 (ms)": _cell(r.figures["ttft_p99"], 1e3, 0),
                 "e2e p50 (s)": _cell(r.figures["e2e_p50"]), "e2e p99 (s)": _cell(r.figures["e2e_p99"]), "errors": _errors(r.errors)}
                for r in p.rows]  # fmt: skip
        rows += [{"balancer": s.balancer, "ok/sent": f"{s.ok}/{s.sent}", "req/s": _cell(s.figures["throughput"]),
                  "TTFT p50 (ms)": _cell(s.figures["ttft_p50"], 1e3, 0), "TTFT p99 (ms)": _cell(s.figures["ttft_p99"], 1e3, 0),
                  "e2e p50 (s)": _cell(s.figures["e2e_p50"]), "e2e p99 (s)": _cell(s.figures["e2e_p99"]),
                  "errors": "none modelled" if s.ok == s.sent else f"{s.sent - s.ok} turned away (no queue in the simulator)"}
                 for s in p.simulator]  # fmt: skip
        return rows
    if isinstance(p, OverheadPart):
        out = [{"target": t, "requests": f"{p.requests[t]:,}", "p50 (ms)": f"{p.p50_ms[t]:.2f}", "p99 (ms)": f"{p.p99_ms[t]:.2f}",
                "added p50 (ms)": "-" if t == "direct" else f"{p.added_p50_ms[t]:+.2f}",
                "added p99 (ms)": "-" if t == "direct" else f"{p.added_p99_ms[t]:+.2f}",
                "CPU per request (ms)": f"{p.cpu_ms_per_request[t]:.3f}"} for t in TARGETS]  # fmt: skip
        x = lambda v: "n/a (HAProxy's within the noise)" if math.isnan(v) else f"{v:.1f}x"  # noqa: E731
        out.append({"target": "gateway / HAProxy", "requests": "", "p50 (ms)": "", "p99 (ms)": "",
                    "added p50 (ms)": x(p.ratio["added_p50"]), "added p99 (ms)": x(p.ratio["added_p99"]),
                    "CPU per request (ms)": x(p.ratio["cpu"])})  # fmt: skip
        return out
    if isinstance(p, CapacityPart):
        out = [{"target": t, "req/s": f"{p.rps[t]:,.0f}", "errors": str(p.errors[t]), "CPU per request (ms)": f"{p.cpu_ms_per_request[t]:.3f}"}
               for t in TARGETS]  # fmt: skip
        out.append({"target": "gateway / HAProxy", "req/s": f"{p.ratio['rps']:.2f}x (vs direct {p.ratio['rps_vs_direct']:.2f}x)",
                    "errors": "", "CPU per request (ms)": f"{p.ratio['cpu']:.1f}x"})  # fmt: skip
        return out
    assert isinstance(p, StormPart)
    return [{"policy": prefix + r.policy, "servers fail": f"{r.fraction:.0%}", "client requests": f"{r.requests:,}",
             "attempts per request": _cell(r.attempts_per_request), "client success": _cell(r.success_rate, 100, 1) + " %"}
            for prefix, rows in (("", p.rows), ("simulator: ", p.simulator)) for r in rows]  # fmt: skip


def markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """``rows`` (from :func:`table`) as a markdown table."""
    if not rows:
        return ""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m solution.gateway.results [PATH]``: every part as a markdown table, with its command and machine."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m solution.gateway.results", description=main.__doc__)
    parser.add_argument("path", nargs="?", default=str(RESULTS_PATH))
    args = parser.parse_args(argv)
    results = load(args.path)
    for name in sorted(results.parts, key=list(PART_KINDS).index):  # the order, whatever order the runs ended in
        p = results.parts[name]
        m = p.machine
        print(f"## {name}{' (preliminary)' if p.preliminary else ''}\n\n`{p.command}`  \n"
              f"{m.cores} cores, load average {m.load_average[0]:.2f} at the start, {m.date}, commit {m.commit[:10]}"
              f"{' (dirty)' if m.dirty else ''}, took {p.took_seconds:.0f} s\n")  # fmt: skip
        print(markdown(table(results, name)) + "\n")
    for key, text in results.notes.items():
        print(f"**{key}**: {text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
