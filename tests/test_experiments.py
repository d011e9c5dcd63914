"""Every registered experiment's :quick config runs end to end and follows the run protocol;
``reproduce`` gathers results into REPORT.md."""

import json

import pytest

from jaxlab import launch, report
from jaxlab.experiments import RUNNERS, describe
from jaxlab.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_quick_config_runs_end_to_end(name, tmp_path):
    config = launch.load_config(f"{name}:quick")
    assert config.experiment == name
    assert describe(name), f"{name}: runner module needs a one-line docstring"
    results = launch.run_experiment(config, tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config"]["experiment"] == name
    assert {"jax", "backend", "device_count", "git_commit"} <= set(stored["machine"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert lines and all("step" in json.loads(line) for line in lines)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(results))
    assert results["plots"], f"{name} makes no plot"
    for plot in results["plots"]:
        assert (tmp_path / plot).read_bytes()[:8] == PNG_MAGIC
    assert results["claims"], f"{name} checks no claim"
    for c in results["claims"]:
        assert set(c) == {"name", "source", "expected", "measured", "tolerance", "agree"}
    # No quick claim disagrees unless the config lists it, with a reason, as known-disagreeing.
    known = dict(config.known_disagreements)
    assert all(isinstance(r, str) and r.strip() for r in known.values()), known
    disagree = [c["name"] for c in results["claims"] if c["agree"] is False]
    unlisted = [n for n in disagree if n not in known]
    assert not unlisted, f"{name}: claims disagree but are not in known_disagreements: {unlisted}"


def _fake_runner(config, workdir):
    from jaxlab import metrics, plots

    metrics.MetricsWriter(workdir).write(0, value=config.value)
    fig, ax = plots.new_figure()
    ax.plot([0, 1], [0, config.value])
    name = plots.save_figure(fig, workdir, "line.png")
    ok = report.claim(
        "value is one",
        source="test",
        expected="1",
        measured=config.value,
        tolerance="exact",
        agree=config.value == 1,
    )
    bad = report.claim(
        "value is two",
        source="test",
        expected="2",
        measured=config.value,
        tolerance="exact",
        agree=config.value == 2,
    )
    table = report.markdown_table(["a", "b"], [[1, 2.5]])
    return {
        "summary": "fake",
        "figures": {"value": config.value},
        "claims": [ok, bad],
        "tables": {"T": table},
        "plots": [name],
        "notes": ["a note"],
    }


def _broken_runner(config, workdir):
    raise RuntimeError("boom")


def test_reproduce_writes_report(tmp_path, monkeypatch, capsys):
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("fake", "broken"):
        (configs / f"{name}.py").write_text(
            '"""Test config."""\nimport ml_collections\n'
            "def get_config(arg=None):\n"
            f"    return ml_collections.ConfigDict(dict(experiment={name!r}, value=1))\n"
        )
    monkeypatch.setattr(launch, "CONFIG_DIR", configs)
    monkeypatch.setitem(RUNNERS, "fake", _fake_runner)
    monkeypatch.setitem(RUNNERS, "broken", _broken_runner)
    out = tmp_path / "out"
    assert main(["reproduce", "--quick", "--only", "fake,broken", "--out", str(out)]) == 1
    text = (out / "REPORT.md").read_text()
    assert "## fake" in text and "## broken" in text
    assert "**FAILED**: `RuntimeError: boom`" in text
    assert "| value is one | test | 1 | 1 | exact | agree |" in text
    assert "| value is two | test | 2 | 1 | exact | **disagree** |" in text
    assert "![line.png](quick/fake/line.png)" in text
    assert (out / "quick" / "fake" / "line.png").exists()
    assert not (out / "quick" / "broken" / "results.json").exists()  # never half-written
    capsys.readouterr()


def test_markdown_table_formats_numbers():
    t = report.markdown_table(["x", "y"], [[1.23456789, 1e-7], ["a|b", True]])
    assert t.splitlines()[2] == "| 1.235 | 1.000e-07 |"
    assert t.splitlines()[3] == "| a\\|b | yes |"
