"""Shared fixtures: a real IPython shell with the extension loaded, tiny models, quiet logs."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # `import tiny`
# kernels started by tests (nbclient) import this checkout and the test helpers too
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="peft")

OUT = ROOT / "tests" / "_out"


@pytest.fixture
def out_dir(request: pytest.FixtureRequest) -> Path:
    """A folder under tests/_out for this test's artefacts (screenshots, runs), kept after the run."""
    path = OUT / request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (`runs.one_thread`); a module asks for it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import runs

    with runs.one_thread():
        yield


@pytest.fixture(scope="module")
def tok():
    """The tiny models' tokenizer, once per module."""
    import tiny

    return tiny.tokenizer()


@pytest.fixture
def shell():
    """A real InteractiveShell with jupyter_peft loaded and an empty namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.reset(new_session=False)
    sh.run_line_magic("load_ext", "jupyter_peft")
    yield sh
    sh.run_line_magic("unload_ext", "jupyter_peft")
    sh.reset(new_session=False)


@pytest.fixture(scope="session")
def lab():
    """One JupyterLab server for the whole session (real browser tests)."""
    import lab as lab_module

    reason = lab_module.available()
    if reason:
        pytest.fail(f"real-browser tests cannot run: {reason}")
    server = lab_module.Lab().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    import lab as lab_module
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=lab_module.CHROMIUM, args=lab_module.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def lab_page(lab, browser):
    """A fresh browser page on the session's JupyterLab, as a `lab.LabPage`."""
    import lab as lab_module

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield lab_module.LabPage(lab, page)
    context.close()


@pytest.fixture(autouse=True)
def _close_studios():
    """A studio estimates memory on a background thread after each change: close the studios a
    test made, so that their estimates do not run on into the next tests."""
    yield
    from jupyter_peft.session import session

    for studio in list(session().studios):
        studio.close()
        studio._estimator.wait(120)  # an estimate already running finishes here, not in the next test


@pytest.fixture(autouse=True)
def _stop_runs():
    """A run a test left training would hold its model and a core into the next tests: stop
    it and wait for it (the run keeps its adapter, as a user's stopped run does)."""
    yield
    from jupyter_peft.session import session

    for run in session().active_runs():
        run.stop()
        run.wait(120)
