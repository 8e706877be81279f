"""Choosing the implementation under test: the reference or the candidate's.

Notebooks, widgets, checks and the simulator take the implementation from
here, so one environment variable switches all of them::

    LB_IMPL=solution   # the reference
    LB_IMPL=exercises  # the candidate's package (the default in notebooks)

``LB_EXERCISES_PATH`` names the folder that holds the ``exercises`` package
to use instead of the repository's own (a candidate's checkout, to run
the public tests on it).

The candidate's bundle (``tools/make_bundle.py``) ships ``solution`` without
the reference modules.  There ``impl_name`` defaults to ``exercises`` even
where the repository defaults to the reference, :func:`demo_impl` (what the
notebooks' demonstrations run) is the candidate's package, and
:func:`needs_working_code` turns a stub's ``NotImplementedError`` into a
one-line note, so every cell but the check cells runs on untouched stubs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["IMPLEMENTATIONS", "REFERENCE_MODULES", "impl_name", "load_impl", "reference_available", "demo_impl",
           "needs_working_code"]  # fmt: skip

#: The packages that implement the course's interfaces.
IMPLEMENTATIONS = ("solution", "exercises")

#: The reference's modules a candidate writes (``tools/make_exercises.py``'s ``EXERCISES``); the bundle leaves them out.
REFERENCE_MODULES = ("balancer", "request_queue", "strategies", "health", "affinity", "tiers", "deploy", "retry")


def reference_available() -> bool:
    """True in the repository; False in the candidate's bundle, which has no ``solution.balancer`` and co."""
    package = importlib.import_module("solution")
    folders = [os.path.abspath(f) for f in package.__path__]
    for module in REFERENCE_MODULES:
        spec = importlib.util.find_spec(f"solution.{module}")
        # only a module in the package's own folder counts (an editable install elsewhere may still map the name)
        if spec is None or os.path.dirname(os.path.abspath(spec.origin or "")) not in folders:
            return False
    return True


def impl_name(default: str = "exercises") -> str:
    """The package named by ``LB_IMPL``, or ``default`` when it is unset.

    Without the reference (the candidate's bundle), a ``default`` of
    ``solution`` means ``exercises``, and ``LB_IMPL=solution`` is an error.
    """
    name = os.environ.get("LB_IMPL", "").strip()
    if not name:
        name = "exercises" if default == "solution" and not reference_available() else default
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"LB_IMPL must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    if name == "solution" and not reference_available():
        raise ValueError("LB_IMPL=solution, but this copy of the course has no reference implementation; use LB_IMPL=exercises")
    return name


def load_impl(name: str | None = None, *, default: str = "exercises", reload: bool = False) -> ModuleType:
    """Import and return the implementation package (``solution`` or ``exercises``).

    ``reload=True`` re-imports the candidate's package and its modules, so a
    notebook picks up edits to ``exercises/`` without restarting the kernel.
    The reference is never reloaded: other modules hold its classes.
    """
    name = name if name is not None else impl_name(default)
    if name == "solution" and not reference_available():
        raise ImportError("this copy of the course has no reference implementation (the candidate's bundle); load 'exercises'")
    folder = os.environ.get("LB_EXERCISES_PATH", "").strip()
    if name == "exercises" and folder:
        folder = os.path.abspath(folder)
        if sys.path[:1] != [folder]:
            sys.path.insert(0, folder)
    module = importlib.import_module(name)
    if name == "exercises" and folder and not os.path.abspath(module.__file__ or "").startswith(folder + os.sep):
        raise ImportError(
            f"LB_EXERCISES_PATH is {folder}, but exercises was already imported from {module.__file__}; "
            "set the variable before anything imports exercises"
        )
    if reload and name != "solution":
        for sub in sorted(m for m in sys.modules if m.startswith(name + ".")):
            importlib.reload(sys.modules[sub])
        module = importlib.reload(module)
    return module


def demo_impl() -> ModuleType:
    """The package the notebooks' demonstrations run: the reference when it is there (the
    repository), else the candidate's (:func:`load_impl`, in the candidate's bundle)."""
    return importlib.import_module("solution") if reference_available() else load_impl("exercises")


@contextmanager
def needs_working_code(what: str = "") -> Iterator[None]:
    """Run a demonstration; if it reaches a stub, print a one-line note instead of a traceback.

    ``with needs_working_code("your LoadBalancer (stage 1)"):`` around a cell's
    body: a ``NotImplementedError`` (an unimplemented part of ``exercises/``)
    ends the block with a note saying what to implement to see it; any other
    exception propagates.
    """
    try:
        yield
    except NotImplementedError as exc:
        wanted = f"it needs {what}: " if what else ""
        then = " Implement it, then re-run this cell." if "not implemented yet" in str(exc) else ""
        print(f"(Not shown here: {wanted}{str(exc).rstrip('.')}.{then})")
