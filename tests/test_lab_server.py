"""`jupyter lab` started from the repository root, as the README's first command starts it,
starts clean. JupyterLab runs Node on its own scripts (node-version-check.js, jupyter_builder's
yarn.js); with `.venv` inside the repository the nearest package.json above them is ours, so
a `"type": "module"` there made Node read them as ES modules and the log showed
`ReferenceError: require is not defined in ES module scope`, `Dynamic require of "util" is not
supported` and "Could not determine jupyterlab build status"."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "jplabtest"
# what a broken start shows; a Node crash ends with its stack ("at file:///...") and "Node.js vNN"
MARKERS = ("ReferenceError", "require is not defined", "Dynamic require",
           "Could not determine jupyterlab build status", "Fail to get yarn configuration")
NODE_ERROR = re.compile(r"^\s*\w*Error: |^\s+at .*(?:file://|node:internal)|^Node\.js v\d")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jupyter() -> list[str]:
    """This interpreter's `jupyter` (.venv/bin/jupyter when run with .venv/bin/python)."""
    script = Path(sys.executable).parent / "jupyter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyter"]


def _get(url: str, timeout: float = 60) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        return response.status


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node on PATH: JupyterLab runs no Node script")
def test_jupyter_lab_starts_without_node_errors():
    home = Path(tempfile.mkdtemp(prefix="jp-labserver-"))
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    notebook = "notebooks/quickstart.ipynb"  # the README's `.venv/bin/jupyter lab notebooks/quickstart.ipynb`
    args = [notebook] if (ROOT / notebook).exists() else []
    cmd = [
        *_jupyter(), "lab", *args, "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log_path = home / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                assert _get(f"{url}/api/status?token={TOKEN}", timeout=5) == 200
                break
            except OSError:
                tail = log_path.read_text(errors="replace")[-3000:]
                assert proc.poll() is None, "jupyter lab exited:\n" + tail
                assert time.time() < deadline, "jupyter lab did not answer:\n" + tail
                time.sleep(0.5)
        # what a browser opening the README's link asks for: the page, then the build status
        # (the server runs Node to answer it)
        page = f"/lab/tree/{notebook}" if args else "/lab"
        assert _get(f"{url}{page}?token={TOKEN}") == 200
        assert _get(f"{url}/lab/api/build?token={TOKEN}") == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        text = log_path.read_text(errors="replace")
        shutil.rmtree(home, ignore_errors=True)
    assert "Jupyter Server" in text and "is running at" in text, text[-3000:]
    bad = [line[:300] for line in text.splitlines() if any(m in line for m in MARKERS) or NODE_ERROR.search(line)]
    assert not bad, "jupyter lab's log shows errors:\n" + "\n".join(bad)
