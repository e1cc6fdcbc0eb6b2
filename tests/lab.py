"""Real JupyterLab on 127.0.0.1, driven by Playwright in Debian's Chromium.

`Lab` starts one server per test session in a temporary Jupyter home; `LabPage` opens a
notebook, runs cells and reads the page. Recipe and traps: shared/notes/browser-tests.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
ROOT = Path(__file__).resolve().parents[1]


def available() -> str | None:
    """None when a real-browser test can run here, else the reason it cannot."""
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (.ci/run installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in a throwaway Jupyter home, serving `self.root`."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="jp-lab-"))
        self.root = self.home / "work"
        self.root.mkdir()
        self.port = _free_port()
        self.token = "jptest"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Lab:
        config = self.home / "config"
        settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "IPYTHONDIR": str(self.home / "ipython"),
            # the user data dir (this checkout's labextension, linked below) before the venv's
            # installed copy: in a virtualenv jupyter_core puts the environment first by default
            "JUPYTER_PREFER_ENV_PATH": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "TOKENIZERS_PARALLELISM": "false",
        }
        self._install_kernelspec(env)
        self._link_labextension(env)
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
            f"--port={self.port}", f"--IdentityProvider.token={self.token}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
        ]
        self.log = open(self.home / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.5)
        raise RuntimeError("JupyterLab did not start:\n" + (self.home / "server.log").read_text()[-3000:])

    def _install_kernelspec(self, env: dict[str, str]) -> None:
        """A kernelspec for this interpreter, so the notebook runs where jupyter_peft is."""
        spec = Path(env["JUPYTER_DATA_DIR"]) / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "env": {"PYTHONPATH": env["PYTHONPATH"], "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"},
        }))

    def _link_labextension(self, env: dict[str, str]) -> None:
        """This checkout's prebuilt jupyter-peft front-end extension (lets the studio write
        cells), ahead of any installed copy: the user data dir comes first on Jupyter's path."""
        built = ROOT / "jupyter_peft" / "labextension"
        if (built / "package.json").exists():
            target = Path(env["JUPYTER_DATA_DIR"]) / "labextensions" / "jupyter-peft"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(built, target_is_directory=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook(self, name: str, cells: list[str]) -> str:
        """Write a fresh notebook of code cells into the server's root; returns its name."""
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class LabPage:
    """A notebook opened in headless Chromium."""

    def __init__(self, lab: Lab, page: Any) -> None:
        self.lab = lab
        self.page = page

    def open(self, notebook: str, timeout: float = 90_000) -> LabPage:
        self.page.goto(f"{self.lab.url}/lab/tree/{notebook}?reset&token={self.lab.token}")
        # The kernel is ready when the indicator is idle AND the toolbar names it; clicking
        # before both hold opens a modal "Select Kernel" dialog.
        self.page.wait_for_function(
            """() => {
                const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
                const k = document.querySelector('.jp-Toolbar-kernelName');
                return s && s.getAttribute('data-status') === 'idle' && k && k.textContent.includes('Python');
            }""",
            timeout=timeout,
        )
        return self

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def run_cell(self, index: int, timeout: float = 120_000) -> None:
        """Run cell `index` (0-based) and wait until its prompt shows a number."""
        cell = self.cell(index)
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(
            """(i) => {
                const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
                const p = c && c.querySelector('.jp-InputPrompt');
                return p && /\\[\\d+\\]/.test(p.textContent);
            }""",
            arg=index,
            timeout=timeout,
        )

    def run_all(self, count: int, timeout: float = 120_000) -> None:
        for i in range(count):
            self.run_cell(i, timeout=timeout)

    def kernel_eval(self, expr: str, timeout: float = 60_000) -> Any:
        """Evaluate `expr` in the notebook's kernel (through the app's session), as JSON."""
        return self.page.evaluate(
            """async ([expr, timeout]) => {
                const app = window.jupyterapp;
                const panel = app.shell.currentWidget;
                const kernel = panel.sessionContext.session.kernel;
                const code = `import json as __j; print(__j.dumps(${expr}))`;
                const future = kernel.requestExecute({ code, silent: false, store_history: false });
                let out = '';
                future.onIOPub = (msg) => {
                    if (msg.header.msg_type === 'stream') out += msg.content.text;
                    if (msg.header.msg_type === 'error')
                        out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
                };
                await Promise.race([future.done, new Promise((_, r) => setTimeout(() => r('timeout'), timeout))]);
                return out;
            }""",
            [expr, timeout],
        )

    def kernel_value(self, expr: str) -> Any:
        text = self.kernel_eval(expr)
        if text.startswith("ERROR"):
            raise AssertionError(f"kernel: {text}")
        return json.loads(text)
