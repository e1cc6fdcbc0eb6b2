"""Hostile and unlucky exports (issue 15): a user's files are never overwritten unasked, every
shell word is quoted, every string written into code is escaped, and a path that is a file or a
folder gives a PlanError with nothing left behind."""

from __future__ import annotations

import importlib.util
import shlex
import textwrap
from pathlib import Path

import pytest
import tiny
import yaml

import jupyter_peft as jp
from jupyter_peft import PlanError, exports

PLAN = "method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]\nbase: some/model\ntrain: {trainer: sft, max_steps: 3}\n"
ROWS = [{"text": "the cat sat on the mat"}] * 4


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_export_into_a_folder_with_the_users_files_overwrites_nothing_unasked(tmp_path):
    mine = {"README.md": b"# my notes\n", "train.py": b"print('my own script')\n", "data/train.jsonl": b'{"a": 1}\n'}
    for name, content in mine.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    before = _files(tmp_path)
    with pytest.raises(PlanError, match="would overwrite 3 file") as caught:
        exports.export_files(PLAN, tmp_path, data=ROWS)
    assert all(name in str(caught.value) for name in ("README.md", "train.py", "train.jsonl"))
    assert _files(tmp_path) == before  # nothing written, no .tmp left
    with pytest.raises(PlanError, match="would overwrite 1 file"):
        jp.export(PLAN, tmp_path / "train.py")
    assert _files(tmp_path) == before
    written = exports.export_files(PLAN, tmp_path, data=ROWS, overwrite=True)
    assert tmp_path / "train.py" in written and (tmp_path / "README.md").read_bytes() != mine["README.md"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_export_path_that_is_a_folder_or_under_a_file_is_a_plan_error(tmp_path):
    (tmp_path / "taken.py").mkdir()
    (tmp_path / "afile").write_text("x")
    before = _files(tmp_path)
    with pytest.raises(PlanError, match="is a folder"):
        jp.export(PLAN, tmp_path / "taken.py")
    with pytest.raises(PlanError, match="is a file, not a folder"):
        exports.export_files(PLAN, tmp_path / "afile")
    with pytest.raises(PlanError, match="is a file, not a folder"):
        jp.export(PLAN, tmp_path / "afile" / "train.py")
    assert _files(tmp_path) == before and not list(tmp_path.rglob("*.tmp"))


def test_launch_commands_quote_every_shell_word(tmp_path):
    done = jp.export(PLAN, tmp_path / "my train;touch X.py", gpus=2, machines=2, main_ip="10.0.0.1")
    assert done.commands[0] == "python 'my train;touch X.py'"
    for command in done.commands:
        words = shlex.split(command)
        assert "my train;touch X.py" in words and "X.py" not in words
    with pytest.raises(PlanError, match="not a host name"):
        jp.export(PLAN, tmp_path / "other.py", gpus=2, machines=2, main_ip="10.0.0.1; touch pwned")
    everything = exports.export_all(PLAN, tmp_path / "all", gpus=2, machines=2, main_ip="10.0.0.1")
    readme = (tmp_path / "all" / "README.md").read_text()
    assert all(c in readme for c in everything.commands)


def test_strings_written_into_code_are_escaped(tmp_path):
    evil = 'x"""\nimport os; os.system("touch pwned")\n"""\\'
    plan = jp.Plan.from_yaml(PLAN).replace(train={"trainer": "sft", "max_steps": 3, "run_name": evil})
    jp.export(plan, tmp_path / "train.py")
    spec = importlib.util.spec_from_file_location("exported_evil", tmp_path / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports: the value did not end the docstring
    assert textwrap.indent(plan.to_yaml().rstrip(), "    ") in module.__doc__  # the plan, as it was
    assert module.training_config().run_name == evil
    assert not (tmp_path / "pwned").exists()


def test_a_line_break_in_a_name_stays_inside_the_yaml_comment(tmp_path):
    name = "evil\nmixed_precision: fp16\n.yaml"
    jp.export(PLAN, tmp_path / name, "accelerate")
    loaded = yaml.safe_load((tmp_path / name).read_text())
    assert loaded["mixed_precision"] == "no"  # the injected line is a comment


def test_the_export_magic_overwrites_only_when_told(shell, tmp_path):
    from IPython.core.error import UsageError

    shell.user_ns["plan"] = PLAN
    (tmp_path / "train.py").write_text("mine\n")
    with pytest.raises(UsageError, match="--overwrite"):
        shell.run_line_magic("peft", f"export {tmp_path / 'train.py'} --plan plan")
    assert (tmp_path / "train.py").read_text() == "mine\n"
    shell.run_line_magic("peft", f"export {tmp_path / 'train.py'} --plan plan --overwrite")
    assert "def peft_config" in (tmp_path / "train.py").read_text()


def test_an_export_with_a_model_still_works(tmp_path):
    model = jp.apply(PLAN, tiny.build("llama"))
    done = jp.export(None, tmp_path / "train.py", model=model)
    assert done.files == [tmp_path / "train.py"]
