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
    else:  # it started training (a run that failed before owns nothing, see below)
        (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
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


LONG = "x" * 5000
BAD_VALUES = [  # issue 17 §2 and §3.10: value errors at the config boundary, one line + exit 2
    (["run", "deer_train:quick", "--config.model.mode=bogus"], "model.mode: expected one of"),
    (["run", "lm_baseline:quick", "--config.model.position=bogus"], "model.position: expected"),
    (["run", "lm_baseline:quick", "--config.model.position=ünï"], "model.position: expected"),
    (["run", "deer_train:quick", "--config.model.cell=ünïcødé"], "model.cell: expected one of"),
    (["run", "deer_train:quick", f"--config.model.cell={LONG}"], "(5000 characters)"),
    (["run", "deer_convergence:quick", "--config.survey.modes=('newton', 'nope')"], "'nope'"),
    (["run", "lm_baseline:quick,seed=99999999999999999999"], "seed: expected an integer in"),
    (["run", "deer_train:quick", "--config.seed=-1"], "seed: expected an integer in"),
    (["run", "deer_train:quick", "--config.seed=" + "9" * 5000], "5000 digits (at most 4300)"),
    (["run", "deer_train:quick", "--config.train.steps=0"], "train.steps: expected a step count"),
    (["run", "lm_baseline:quick", "--config.train.num_steps=-3"], "train.num_steps: expected"),
    (["run", "lm_baseline:quick", "--config.train.learning_rate=inf"], "expected a finite"),
    (["run", "lm_baseline:quick", "--config.train.learning_rate=nan"], "expected a finite"),
    (["run", "lm_baseline:quick", "--config.data.files=/nonexistent/a.txt"], "no such file"),
    (["run", "lm_baseline:quick", "--config.data.files=('/no/b.txt',)"], "no such file"),
    (["run", "lm_baseline:quick", "--config.num_devices=5"], "(devices available), got 5"),
    (["run", "lm_baseline:quick", "--config.seed.x=1"], "'seed' is not a group"),
    (["run", "lm_baseline:quick", "--config.model.dtype.x=1"], "'model.dtype' is not a group"),
    (["run", "deer_convergence:quick", "--config.first_k=5"], "expected a tuple"),
    (["run", "deer_train:quick,quick=maybe"], "expected true/false"),
    (["run", "--distributed", "lm_baseline:quick"], "--distributed: "),
    (["run", "lm_baseline:quick", "--config.train.grad_clip=-1"], "grad_clip: expected a number >"),
    (["run", "lm_baseline:quick", "--config.train.grad_clip=0"], "grad_clip: expected a number >"),
    (["run", "lm_baseline:quick", "--config.train.learning_rate=-1"], "expected a number > 0"),
    (["run", "lm_baseline:quick", "--config.train.weight_decay=-0.1"], "expected a number >= 0"),
    (["reproduce", "--only", ""], "--only: expected one or more experiment names"),
    (["reproduce", "--only", ","], "--only: expected one or more experiment names"),
    (["abc", "1e5000"], "more than 4300 digits"),
    (["abc", "1e1000000000"], "more than 4300 digits"),
    (["abc", "9" * 5000], "5000 digits, at most 4300"),
    (["abc", "-1"], "expected a non-negative integer"),
    (["abc"], "abc: the following arguments are required: N"),
]


@pytest.mark.parametrize("argv, fragment", BAD_VALUES, ids=lambda v: str(v)[:40])
def test_bad_values_are_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("jaxlab: error: ")
    assert fragment in line
    assert len(line) < 400  # a long or odd value is shortened, never echoed whole


def test_on_off_accepted_by_both_parsers():
    """One value parser: file arguments and --config overrides accept the same spellings."""
    assert parse_arg("quick=on", quick=False, seed=0).quick is True
    assert parse_arg("quick=off", quick=True, seed=0).quick is False
    config = launch.load_config("deer_train:quick", ["--config.train.steps=1_000"])
    assert config.train.steps == 1000
    assert launch.load_config("lm_baseline:quick=on").train.num_steps > 0


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("def get_config(arg=None):\n    raise RuntimeError('boom')\n", "failed: RuntimeError"),
        ("import no_such_module_xyz\n", "failed: ModuleNotFoundError"),
    ],
)
def test_broken_config_file_is_named_first(tmp_path, capsys, body, fragment):
    cfg = tmp_path / "broken.py"
    cfg.write_text(body)
    with pytest.raises((RuntimeError, ImportError)):  # the user's code: its traceback follows
        main(["run", str(cfg)])
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"jaxlab: error: config file {cfg}") and fragment in first


def test_config_file_syntax_error_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "syntax.py"
    cfg.write_text("def get_config(arg=None)\n    return 1\n")
    assert main(["run", str(cfg)]) == 2
    assert f"config file {cfg} does not parse" in _err_line(capsys)


def _fake_runner(config, workdir):
    from jaxlab import metrics, plots

    metrics.MetricsWriter(workdir).write(0, value=config.value)
    fig, ax = plots.new_figure()
    ax.plot([0, 1], [0, 1])
    return {"claims": [], "plots": [plots.save_figure(fig, workdir, "p.png")]}


@pytest.fixture
def fake_experiment(tmp_path, monkeypatch):
    from jaxlab.experiments import RUNNERS

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "fake.py").write_text(
        "import ml_collections\n"
        "def get_config(arg=None):\n"
        "    return ml_collections.ConfigDict(dict(experiment='fake', value=1))\n"
    )
    monkeypatch.setattr(launch, "CONFIG_DIR", configs)
    monkeypatch.setitem(RUNNERS, "fake", _fake_runner)
    return tmp_path / "out"


def _stale_run(workdir):
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps({"config": {"experiment": "fake", "value": 2}}))


def test_reproduce_never_deletes_a_folder_it_did_not_create(fake_experiment, capsys):
    workdir = fake_experiment / "quick" / "fake"
    _stale_run(workdir)
    (workdir / "metrics.jsonl").write_text('{"step": 1, "value": 2}\n')  # it trained
    (workdir / "my_notes.txt").write_text("the user's own notes")
    assert main(["reproduce", "--only", "fake", "--out", str(fake_experiment)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("jaxlab: error: ") and "reproduce did not create" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert (workdir / "my_notes.txt").read_text() == "the user's own notes"
    assert json.loads((workdir / "config.json").read_text())["config"]["value"] == 2


def test_reproduce_replaces_its_own_stale_run(fake_experiment, capsys):
    workdir = fake_experiment / "quick" / "fake"
    _stale_run(workdir)
    (workdir / "metrics.jsonl").write_text('{"step": 1, "value": 2}\n')
    (workdir / launch.REPRODUCE_MARK).write_text("")
    assert main(["reproduce", "--only", "fake", "--out", str(fake_experiment)]) == 0
    assert json.loads((workdir / "config.json").read_text())["config"]["value"] == 1
    assert (workdir / "results.json").is_file() and (workdir / launch.REPRODUCE_MARK).is_file()
    capsys.readouterr()


def test_failed_run_before_training_does_not_own_its_workdir(fake_experiment, capsys):
    """A config.json left by a run that never trained is no reason to refuse the corrected run."""
    workdir = fake_experiment / "run"
    _stale_run(workdir)
    assert main(["run", "fake", "--workdir", str(workdir)]) == 0
    assert json.loads((workdir / "config.json").read_text())["config"]["value"] == 1
    # Once a run has logged metrics, a different config is refused, with how to continue.
    (workdir / "results.json").unlink()
    stored = json.loads((workdir / "config.json").read_text())
    stored["config"]["value"] = 2
    (workdir / "config.json").write_text(json.dumps(stored))
    capsys.readouterr()
    assert main(["run", "fake", "--workdir", str(workdir)]) == 2
    assert "choose another --workdir" in _err_line(capsys)


def test_truncated_metrics_line_is_skipped_on_resume(tmp_path, capsys):
    from jaxlab import metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    writer = metrics.MetricsWriter(tmp_path, resume_step=2)
    writer.write(3, loss=1.0)
    assert [r["step"] for r in metrics.read_metrics(tmp_path)] == [1, 2, 3]
    assert "skipped 1 damaged line" in capsys.readouterr().err


def test_nan_guard_is_one_line(fake_experiment, monkeypatch, capsys):
    from jaxlab import metrics
    from jaxlab.experiments import RUNNERS

    def diverging(config, workdir):
        metrics.check_finite(7, {"loss": float("nan")}, metrics.MetricsWriter(workdir))

    monkeypatch.setitem(RUNNERS, "fake", diverging)
    workdir = fake_experiment / "nan"
    assert main(["run", "fake", "--workdir", str(workdir)]) == 1
    assert "non-finite loss at step 7" in _err_line(capsys)
    assert not (workdir / "results.json").exists()


def test_concurrent_run_into_one_workdir_is_refused(fake_experiment, capsys):
    import fcntl

    workdir = fake_experiment / "busy"
    workdir.mkdir(parents=True)
    with open(workdir / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the workdir
        assert main(["run", "fake", "--workdir", str(workdir)]) == 2
        assert "in use by another run" in _err_line(capsys)
    assert main(["run", "fake", "--workdir", str(workdir)]) == 0  # released: runs
    assert (workdir / "results.json").is_file()


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("config.json", "[1, 2]", "unreadable config.json"),
        ("config.json", '{"config": 3}', "unreadable config.json"),
        ("config.json", "{trunc", "unreadable config.json"),
        ("results.json", "{trunc", "damaged results.json"),
    ],
)
def test_damaged_run_files_are_one_line(fake_experiment, capsys, name, text, fragment):
    workdir = fake_experiment / "damaged"
    workdir.mkdir(parents=True)
    if name == "results.json":  # a finished run of this very config, its results garbled
        assert main(["run", "fake", "--workdir", str(workdir)]) == 0
        capsys.readouterr()
    (workdir / name).write_text(text)
    assert main(["run", "fake", "--workdir", str(workdir)]) == 2
    assert fragment in _err_line(capsys)


def test_reproduce_with_an_unwritable_out_is_one_line(fake_experiment, capsys):
    """Issue 17 §3.7: --out that cannot be created is exit 2 before any experiment runs."""
    blocker = fake_experiment.parent / "a_file"
    blocker.write_text("not a directory")
    assert main(["reproduce", "--only", "fake", "--out", str(blocker / "out")]) == 2
    assert "is not writable" in _err_line(capsys)


def test_reproduce_with_an_unwritable_report_is_one_line(fake_experiment, capsys):
    """REPORT.md cannot be written after every experiment ran: one line, exit 2, runs kept."""
    (fake_experiment / "REPORT.md").mkdir(parents=True)  # a directory where the file goes
    assert main(["reproduce", "--only", "fake", "--out", str(fake_experiment)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("jaxlab: error: cannot write") and "the runs are kept" in last
    assert (fake_experiment / "quick" / "fake" / "results.json").is_file()
