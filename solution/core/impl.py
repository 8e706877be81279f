"""Choosing the implementation under test: the reference or the candidate's.

Notebooks, widgets, checks and the simulator take the implementation from
here, so one environment variable switches all of them::

    LB_IMPL=solution   # the reference
    LB_IMPL=exercises  # the candidate's package (the default in notebooks)

``LB_EXERCISES_PATH`` names the folder that holds the ``exercises`` package
to use instead of the repository's own (the grader sets it to a
candidate's checkout).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

__all__ = ["IMPLEMENTATIONS", "impl_name", "load_impl"]

#: The packages that implement the course's interfaces.
IMPLEMENTATIONS = ("solution", "exercises")


def impl_name(default: str = "exercises") -> str:
    """The package named by ``LB_IMPL``, or ``default`` when it is unset."""
    name = os.environ.get("LB_IMPL", "").strip() or default
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"LB_IMPL must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    return name


def load_impl(name: str | None = None, *, default: str = "exercises", reload: bool = False) -> ModuleType:
    """Import and return the implementation package (``solution`` or ``exercises``).

    ``reload=True`` re-imports the candidate's package and its modules, so a
    notebook picks up edits to ``exercises/`` without restarting the kernel.
    The reference is never reloaded: other modules hold its classes.
    """
    name = name if name is not None else impl_name(default)
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
