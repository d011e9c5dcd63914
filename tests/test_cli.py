"""CLI behaviour: listing, overrides, and one-line exit-2 errors for every kind of bad input."""

import json

import pytest

from jaxlab import launch
from jaxlab.config_args import ConfigArgError, parse_arg
from jaxlab.main import main


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def test_list_shows_every_experiment(capsys):
    from jaxlab.experiments import RUNNERS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in RUNNERS:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10  # has a description


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "configs/no_such_experiment.py"], "config file not found"),
        (["run", "no_such_experiment:quick"], "config file not found"),
        (["run", "lm_baseline:quick,bogus=1"], "unknown config argument 'bogus'"),
        (["run", "lm_baseline:quick,seed=x"], "expected an integer"),
        (["run", "lm_baseline:quick", "--config.model.nope=1"], "unknown config key 'model.nope'"),
        (["run", "lm_baseline:quick", "--config.nope.x=1"], "unknown config key 'nope.x'"),
        (["run", "lm_baseline:quick", "--config.train.num_steps=abc"], "expected an integer"),
        (["run", "lm_baseline:quick", "--config.train.learning_rate=fast"], "expected a number"),
        (["run", "lm_baseline:quick", "--config.model=3"], "is a group"),
        (["reproduce", "--only", "nope"], "unknown experiment(s) nope"),
        (["reproduce", "--quick", "--full"], "not allowed with argument"),
        (["frobnicate"], "invalid choice"),
        (["list", "--config.seed=1"], "only apply to `jaxlab run`"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("jaxlab: error: ")
    assert fragment in line


def test_unknown_experiment_in_config_file(tmp_path, capsys):
    cfg = tmp_path / "weird.py"
    cfg.write_text(
        "import ml_collections\n"
        "def get_config(arg=None):\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.experiment = 'not_registered'\n"
        "    return c\n"
    )
    assert main(["run", str(cfg)]) == 2
    assert "unknown experiment 'not_registered'" in _err_line(capsys)


def test_unwritable_workdir(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["run", "lm_baseline:quick", "--workdir", str(blocker / "sub")]) == 2
    assert "is not writable" in _err_line(capsys)


@pytest.mark.parametrize("finished", [True, False])
def test_workdir_with_other_config_is_refused(tmp_path, capsys, finished):
    config = launch.load_config("lm_baseline:quick")
    resolved = launch.config_to_json(config)
    resolved["train"]["num_steps"] = 7  # a different run
    (tmp_path / "config.json").write_text(json.dumps({"config": resolved}))
    if finished:
        (tmp_path / "results.json").write_text("{}")
    assert main(["run", "lm_baseline:quick", "--workdir", str(tmp_path)]) == 2
    line = _err_line(capsys)
    state = "finished" if finished else "unfinished"
    assert f"holds a {state} run of a different config" in line
    assert "train.num_steps" in line


def test_overrides_are_typed_and_applied():
    config = launch.load_config("lm_baseline:quick")
    launch.apply_overrides(
        config,
        [
            "--config.train.num_steps=12",
            "--config.train.learning_rate=0.5",
            "--config.model.position=none",
            "--config.data.files=('a.txt', 'b.txt')",
        ],
    )
    assert config.train.num_steps == 12 and isinstance(config.train.num_steps, int)
    assert config.train.learning_rate == 0.5
    assert config.model.position == "none"
    assert tuple(config.data.files) == ("a.txt", "b.txt")


def test_config_is_locked_after_load():
    config = launch.load_config("lm_baseline:quick")
    with pytest.raises(AttributeError):
        config.not_a_field = 1


def test_parse_arg():
    opts = parse_arg("quick, seed=4", quick=False, seed=0)
    assert opts.quick is True and opts.seed == 4
    assert parse_arg(None, quick=False, seed=0).quick is False
    with pytest.raises(ConfigArgError):
        parse_arg("seed", quick=False, seed=0)  # needs a value
