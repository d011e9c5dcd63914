"""The package layout: no import cycles, module sizes, and every public name of the old flat layout
reachable under the topic packages (STYLE §2.1)."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxlab"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top_level_imports(name: str, path: pathlib.Path) -> set[str]:
    """jaxlab modules imported at module level (function-level lazy imports are not edges)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks do not run
            continue
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("jaxlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxlab"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                deps.add(sub if sub in MODULES else node.module)
    # A submodule importing its own package (or an ancestor) only runs that package's
    # __init__, which Python handles; those edges are not cycles of the code.
    return {
        d
        for d in deps
        if d in MODULES
        and not (name + ".").startswith(d + ".")
        and d != name
        and not (package + ".").startswith(d + ".")
    }


GRAPH = {name: _top_level_imports(name, path) for name, path in MODULES.items()}


def _topological_order() -> list[str]:
    order, state = [], {}

    def visit(node, stack):
        if state.get(node) == "done":
            return
        if state.get(node) == "active":
            cycle = stack[stack.index(node) :] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        state[node] = "active"
        for dep in sorted(GRAPH[node]):
            visit(dep, stack + [node])
        state[node] = "done"
        order.append(node)

    for node in sorted(GRAPH):
        visit(node, [])
    return order


def test_no_import_cycle():
    order = _topological_order()
    assert set(order) == set(MODULES)
    pos = {m: i for i, m in enumerate(order)}
    assert all(pos[d] < pos[m] for m, deps in GRAPH.items() for d in deps)


def test_import_cycle_detector_finds_a_cycle(monkeypatch):
    monkeypatch.setitem(GRAPH, "jaxlab.sharding", GRAPH["jaxlab.sharding"] | {"jaxlab.train"})
    monkeypatch.setitem(GRAPH, "jaxlab.train", GRAPH["jaxlab.train"] | {"jaxlab.sharding"})
    with pytest.raises(AssertionError, match="import cycle"):
        _topological_order()


def test_every_module_imports_in_topological_order_in_a_fresh_interpreter():
    order = [m for m in _topological_order() if not m.endswith("__main__")]
    code = f"import importlib\nfor m in {order!r}:\n    importlib.import_module(m)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_module_and_runner_sizes():
    too_long = []
    for name, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        limit = 250 if name.startswith("jaxlab.experiments.") else 450
        if lines > limit and "single concept" not in doc:
            too_long.append(f"{name}: {lines} lines (limit {limit})")
    assert not too_long, too_long


# Every public name of the flat layout (commit 5d3fd65), with the module it lives in now.
OLD_PUBLIC_NAMES = {
    "scan": ("jaxlab.deer.scan", "METHODS combine_dense combine_diag combine_block "
             "linear_recurrence block_diagonal damped_linear_recurrence"),
    "deer": ("jaxlab.deer", "Cell DeerResult default_tolerances sequential adjoint deer "
             "deer_trace sweeps"),
    "rnn_cells": ("jaxlab.deer.cells", "TanhRNNParams GRUParams DiagGRUParams LSTMParams tanh_rnn "
                  "gru diag_gru lstm init_tanh_rnn init_gru init_diag_gru init_lstm CELLS "
                  "state_size"),
    "parallel_rnn": ("jaxlab.deer", "ParallelRNNConfig ParallelRNN"),
    "seq_parallel": ("jaxlab.deer.seq_parallel", "linear_recurrence_sharded deer_sharded"),
    "rope": ("jaxlab.rope", "KINDS DYNAMIC_KINDS RopeScaling from_hf_config base_inv_freq "
             "yarn_mscale yarn_correction_range rope_frequencies apply_rope beta_digits "
             "mixed_radix_digits"),
    "rerope": ("jaxlab.rope.rerope", "rerope_logits rerope_decode_logits"),
    "attention_scale": ("jaxlab.attention_scale", "LOGN_MODES logn_factor rope_attention_factor"),
    "quanta": ("jaxlab.quanta", "NATS_PER_BIT to_bits zipf_probs tail_mass tail_mass_asymptotic "
               "tail_mass_finite loss_of_quanta quanta_of_parameters loss_of_parameters "
               "learned_from_data data_for_quanta loss_of_data loss_of_data_asymptotic "
               "loss_of_steps poisson_truncation_bound loss_of_data_poisson "
               "poisson_losses_for_capacities PowerLawFit fit_power_law"),
    "quanta_grid": ("jaxlab.quanta", "QuantaGrid simulate_grid"),
    "sparse_parity (task)": ("jaxlab.quanta.sparse_parity", "LN2 TaskConfig Batch EvalSet "
                             "make_subtasks task_probs task_logits sample_for_tasks sample_batch "
                             "dense_inputs exact_test_counts make_test_set dataset_batch "
                             "emergence_steps"),
    "sparse_parity (MLPs)": ("jaxlab.quanta.parity_mlp", "TrainConfig MLPParams TrainState "
                             "param_count init_mlp mlp_logits example_losses make_optimizer "
                             "init_state train_step packed_logits train_step_widths train_widths "
                             "evaluate"),
    "ab_plus_c": ("jaxlab.ab_plus_c", "MAX_N_JAX ALGORITHM_A_OPEN_FAILURES ABC ABCStats "
                  "lower_bound upper_bound within_upper_bound bound_iterations Bounds "
                  "bounds_range algorithm_c min_abc algorithm_b exact_range naive_guess "
                  "algorithm_a min_abc_bruteforce s_star_range algorithm_a_range"),
    "ab_plus_c_jax": ("jaxlab.ab_plus_c", "isqrt ceil_isqrt check_jax_domain min_abc_jax"),
    "ab_plus_c_cli": ("jaxlab.ab_plus_c.cli", "parse_n cli"),
    "tokenizer_cli": ("jaxlab.tokenizer.cli", "cli"),
}  # fmt: skip

# Names that changed with the selector convention (CONTRIBUTING.md, STYLE §2.4 addendum).
RENAMED = {
    ("deer", "MODES"): ("jaxlab.deer", "METHODS"),  # mode strings -> solver objects
    ("scan", "STRUCTURES"): ("jaxlab.deer.scan", "LAYOUTS"),  # structure= -> layout=
    ("scan", "transpose_structure"): ("jaxlab.deer.scan", "transpose_layout"),
    ("seq_parallel", "sequence_mesh"): ("jaxlab.sharding", "sequence_mesh"),  # meshes: sharding
}


@pytest.mark.parametrize("old", sorted(OLD_PUBLIC_NAMES))
def test_every_old_public_name_is_reachable(old):
    module_name, names = OLD_PUBLIC_NAMES[old]
    module = importlib.import_module(module_name)
    missing = [n for n in names.split() if not hasattr(module, n)]
    assert not missing, f"{old}: {missing} not in {module_name}"


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_renamed_public_names(old):
    module_name, name = RENAMED[old]
    assert hasattr(importlib.import_module(module_name), name)


def test_topic_packages_export_what_they_index():
    for pkg in (
        "deer",
        "rope",
        "quanta",
        "ab_plus_c",
        "tokenizer",
        "attention_scale",
        "mad",
        "emo",
    ):
        module = importlib.import_module(f"jaxlab.{pkg}")
        assert module.__doc__ and "Modules" in module.__doc__, pkg
        assert all(hasattr(module, n) for n in module.__all__), pkg


REPO = ROOT.parent


@pytest.mark.parametrize("script", [".ci/run", "tasks.sh", "benchmarks/gpu.sh"])
def test_shell_scripts_parse(script):
    """`bash -n` on the scripts CI and users run first: a broken quote fails here, not in CI."""
    path = REPO / script
    if not path.exists():
        pytest.skip(f"{script} is not in this checkout")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ci_runs_the_readme_test_command():
    """CI calls the test command README.md opens with, as an executable line (not in a comment)."""
    readme = (REPO / "README.md").read_text().splitlines()
    command = next(line.split("#")[0].strip() for line in readme if "tasks.sh test" in line)
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert command in [line for line in ci_lines if not line.startswith("#")]
