"""JupyterLab configuration for the browser test (never use it for real work: no token).

Port and root folder come from ``WB_UI_PORT`` and ``WB_UI_ROOT`` (set by ``conftest.py``).
"""
import os

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by the traitlets config loader)
configure_jupyter_server(c)
c.ServerApp.allow_root = True
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("WB_UI_PORT", "8888"))
c.ServerApp.root_dir = os.environ.get("WB_UI_ROOT", os.getcwd())
c.ServerApp.open_browser = False
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
