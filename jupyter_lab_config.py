"""JupyterLab settings for the course, used by `make lab` and by the browser tests.

Opens the repository (so `exercises/` is one click away) on notebook 01.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)

c.ServerApp.root_dir = str(Path(__file__).resolve().parent)
c.LabApp.default_url = "/lab/tree/notebooks/01_least_connections.ipynb"
c.ServerApp.ip = "127.0.0.1"  # this machine only
# Containers and CI machines often run as root; the server still listens on loopback only,
# behind a token, so refusing to start would only get in the learner's way.
c.ServerApp.allow_root = True
