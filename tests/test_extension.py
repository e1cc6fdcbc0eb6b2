"""The extension: loading is light and repeatable, unloading works, public names resolve."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate", "plotly")


def test_import_and_load_ext_import_no_heavy_library():
    code = (
        "import sys, jupyter_peft\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_line_magic('load_ext', 'jupyter_peft')\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_load_twice_is_harmless_and_unload_removes_the_magics(shell):
    shell.run_line_magic("load_ext", "jupyter_peft")  # second time: IPython says it is loaded
    assert "peft" in shell.magics_manager.magics["line"]
    assert "peft" in shell.magics_manager.magics["cell"]
    shell.run_line_magic("unload_ext", "jupyter_peft")
    assert "peft" not in shell.magics_manager.magics["line"]
    assert "peft" not in shell.magics_manager.magics["cell"]
    shell.run_line_magic("load_ext", "jupyter_peft")  # the fixture unloads again
    assert "peft" in shell.magics_manager.magics["cell"]


def test_public_names_are_the_functions_even_after_their_rooms_are_imported():
    import importlib
    import pkgutil

    import jupyter_peft as jp

    for room in pkgutil.walk_packages(jp.__path__, "jupyter_peft."):  # every room, packages too
        importlib.import_module(room.name)
    for name in jp._LAZY:  # no room shadows a public name
        assert not isinstance(getattr(jp, name), type(jp)) or name in ("methods", "demo"), name
    assert callable(jp.inspect) and jp.inspect.__module__ == "jupyter_peft.model.modelmap"
    assert callable(jp.apply) and jp.apply.__module__ == "jupyter_peft.model.adapt"
    assert jp.Plan.__module__ == "jupyter_peft.plan.plan"
    assert issubclass(jp.PlanError, ValueError)
    assert "lora" in jp.methods.names()


def test_help_lists_the_commands(shell, capsys):
    shell.run_line_magic("peft", "")
    out = capsys.readouterr().out
    for word in ("%peft MODEL", "%peft status", "%peft estimate", "%peft export", "%%peft MODEL [--as NAME]"):
        assert word in out
