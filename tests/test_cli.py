import subprocess
import sys

import pytest

from celebseg_utils import cli


#: The module that owns each command, in the order `celebseg --help` lists them; it defines
#: ``add_<command>_arguments(parser)`` and ``run_<command>(args)``.
OWNERS = {"synth": "celebseg_utils.data.synthetic.generator",
          "download": "celebseg_utils.data.download",
          "prepare": "celebseg_utils.data.prepare_cli",
          "stats": "celebseg_utils.data.stats_cli",
          "train": "celebseg_utils.engine.train_cli",
          "evaluate": "celebseg_utils.engine.evaluate_cli",
          "study": "celebseg_utils.study.runner",
          "compare": "celebseg_utils.engine.evaluate_cli",
          "predict": "celebseg_utils.engine.predict",
          "export": "celebseg_utils.engine.export",
          "demo": "celebseg_utils.demo"}


def test_the_table_lists_every_command_in_help_order():
    assert list(cli.COMMANDS) == list(OWNERS)
    assert all(isinstance(row, cli.Command) and row.help for row in cli.COMMANDS.values())


def test_a_search_for_a_hook_finds_its_caller():
    # The table used to call getattr(module, f"run_{cmd}"): no caller of run_predict to find.
    source = open(cli.__file__, encoding="utf-8").read()
    for name, owner in OWNERS.items():
        assert source.count(f"from {owner} import add_{name}_arguments\n") == 1, name
        assert source.count(f"from {owner} import run_{name}\n") == 1, name


@pytest.mark.parametrize("name", list(OWNERS))
def test_each_row_hands_its_command_to_the_owners_hooks(name, monkeypatch):
    import argparse
    import importlib

    owner = importlib.import_module(OWNERS[name])
    calls = []
    monkeypatch.setattr(owner, f"add_{name}_arguments", lambda parser: calls.append(parser))
    monkeypatch.setattr(owner, f"run_{name}", lambda args: calls.append(args) or 7)
    parser, args = argparse.ArgumentParser(), argparse.Namespace()
    cli.COMMANDS[name].add_arguments(parser)
    assert cli.COMMANDS[name].run(args) == 7
    assert calls == [parser, args]


def test_unknown_option_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["synth", "--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "synth" in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "celebseg_utils", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("celebseg ")


def test_unknown_arguments_are_reported_before_missing_required_ones(capsys):
    parser = cli._Parser(prog="t")
    parser.add_argument("--need", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--a")
    group.add_argument("--b")
    parser.add_argument("files", nargs="+")
    with pytest.raises(SystemExit):
        parser.parse_args(["--typo", "x"])
    assert capsys.readouterr().err == ("error: unrecognized arguments: --typo "
                                       "(see `t --help`)\n")
    # the first pass relaxes "required" and must put it back: the same parser still insists
    with pytest.raises(SystemExit):
        parser.parse_args(["--a", "1"])
    err = capsys.readouterr().err
    assert "required: --need, files" in err
    assert parser.parse_args(["--need", "n", "--b", "2", "f"]).files == ["f"]


@pytest.mark.parametrize("exc, line", [
    (OSError(28, "No space left on device", "/d/x.png"), "error: No space left on device: /d/x.png"),
    (OSError(28, "No space left on device"), "error: No space left on device"),
    (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "error: Invalid cross-device link: /a -> /b"),
    (OSError(5, "HDF5 error\n  stack line 1\n  stack line 2", "/r/best.keras"),
     "error: HDF5 error: /r/best.keras"),
])
def test_environment_errors_are_one_line(monkeypatch, capsys, exc, line):
    from celebseg_utils.data.synthetic import generator as synthetic

    def boom(args):
        raise exc

    monkeypatch.setattr(synthetic, "run_synth", boom)
    assert cli.main(["synth", "--out", "x", "--count", "1"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_help_shows_required_options_as_required(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["synth", "--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "--out DIR --count N" in " ".join(usage.split()) and "[--out DIR]" not in usage


def test_every_command_help_answers_without_importing_tensorflow():
    # `celebseg train --help` used to import TensorFlow: seconds and a screen of start-up
    # logs before the usage. One interpreter asks every command for its help.
    script = (
        "import contextlib, io, sys\n"
        "from celebseg_utils import cli\n"
        "for name in cli.COMMANDS:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "        cli.main([name, '--help'])\n"
        "    assert out.getvalue().startswith('usage: celebseg ' + name), name\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'keras_cv', 'keras_hub', 'matplotlib')\n"
        "         if m in sys.modules]\n"
        "print(len(cli.COMMANDS), heavy)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{len(cli.COMMANDS)} []"
    assert done.stderr == ""
