"""RoPE extrapolation to 8x the training length: PI, NTK, YaRN, ReRoPE, log n (Su 9706/9708).

Two tiny single-head byte LMs are trained at length L: one plain, one with pre-training log-n
attention scaling. Each is then evaluated without fine-tuning at k·L (k = 8) under every
context-extension method, which only changes RoPE frequencies, the cos/sin magnitude, relative
positions (ReRoPE) or the query scale (log n†); RoPE has no parameters, so every variant is the
same trained state merged into a graphdef built from ``cfg.with_attention(...)``.
"""

import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jaxlab import attention, data, metrics, plots, report, rope, sharding, train
from jaxlab.models import LMConfig, TinyLM, lm_config

SOURCE = "Su, kexue.fm/archives/9706 and /9708 (GAU, L = 512, test at 4096)"
SCALE_VARIANTS = (("", "plain", "inverse_sqrt"), ("-log n†", "plain", "logn_posthoc"),
                  ("-log n", "logn", "logn"))  # fmt: skip


def _methods(config, length: int) -> list[tuple[str, dict]]:
    k = float(config.eval_factor)

    def scaled(kind, **extra):
        return {"rope_scaling": (("rope_type", kind), ("factor", k), *extra.items())}

    methods = [
        ("Baseline", {}),
        ("PI", scaled("linear")),
        ("NTK-aware", scaled("ntk_aware")),
        ("NTK-old", scaled("ntk_old")),
        ("NTK-fixed", scaled("ntk_fixed")),
        (f"NTK-mixed b={config.mix_b}", scaled("ntk_mixed", mix_b=float(config.mix_b))),
        ("YaRN", scaled("yarn")),
    ]
    methods += [(f"ReRoPE w={w}", {"rerope_window": int(w)}) for w in config.rerope_windows]
    methods += [
        (f"Leaky ReRoPE w={w} k={kk:g}", {"rerope_window": int(w), "rerope_leaky_k": float(kk)})
        for w, kk in config.leaky
    ]
    return methods


def _variant(cfg: LMConfig, state, **overrides) -> TinyLM:
    """The trained ``state`` under another (parameter-free) position/scale configuration."""
    new_cfg = cfg.with_attention(**overrides)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: TinyLM(new_cfg, rngs=nnx.Rngs(0))))
    return nnx.merge(graphdef, state)


def _correct_by_position(graphdef, state, windows_BL1):
    model = nnx.merge(graphdef, state)
    logits_BLV = model(windows_BL1[:, :-1])
    return (jnp.argmax(logits_BLV, -1) == windows_BL1[:, 1:]).astype(jnp.float32).sum(0)


_correct_by_position_jit = jax.jit(_correct_by_position, static_argnums=0)


def _accuracy_by_position(model: TinyLM, windows: np.ndarray, chunk: int, use_jit: bool):
    """Next-byte accuracy per position, averaged over windows.

    Eager evaluation reuses per-op compilations across variants (each variant is a new graph,
    so a jitted forward would recompile the whole model every time); jit for large runs.
    """
    graphdef, state = nnx.split(model)
    fn = _correct_by_position_jit if use_jit else _correct_by_position
    total = sum(
        np.asarray(fn(graphdef, state, jnp.asarray(windows[i : i + chunk])), np.float64)
        for i in range(0, windows.shape[0], chunk)
    )
    return total / windows.shape[0]


def _repeated_windows(heldout: np.ndarray, num: int, passage: int, length: int) -> np.ndarray:
    """``num`` windows of ``length`` bytes, each a held-out passage tiled to fill it."""
    starts = np.linspace(0, heldout.shape[0] - passage, num).astype(np.int64)
    reps = -(-length // passage)
    rows = [np.tile(heldout[s : s + passage], reps)[:length] for s in starts]
    return np.stack(rows).astype(np.int32)


def _frequency_claims(config) -> tuple[list, list]:
    """Exact identities of the scalings (d = 128, k = 8), and g_i for the frequency plot."""
    tol = config.tolerance
    d, k, base = 128, 8.0, 1e4
    f0 = np.asarray(rope.base_inv_freq(d, base), np.float64)

    def g(kind, **kw):
        scaling = rope.RopeScaling(kind, factor=k, original_max_position_embeddings=4096, **kw)
        return np.asarray(rope.rope_frequencies(scaling, d, base)[0], np.float64) / f0

    new_base = base * k ** (d / (d - 2))
    ntk, fixed, mixed1 = g("ntk_aware"), g("ntk_fixed"), g("ntk_mixed", mix_b=1.0)
    claims = [
        report.claim("NTK-aware base b·k^{d/(d-2)}, d=128, k=8", source=SOURCE,
                     expected="82,684.62", measured=round(new_base, 3),
                     tolerance=f"abs {tol.ntk_aware_base}",
                     agree=bool(abs(new_base - 82684.62) <= tol.ntk_aware_base)),
        report.claim("NTK-aware ratio at highest / lowest frequency", source=SOURCE,
                     expected="1 and 1/k = 0.125", measured=f"{ntk[0]:.6f}, {ntk[-1]:.6f}",
                     tolerance="rel 1e-5 (float32)",
                     agree=bool(abs(ntk[0] - 1) < 1e-5 and abs(ntk[-1] * k - 1) < 1e-5)),
        report.claim("NTK-mixed with b=1 equals NTK-fixed", source=SOURCE, expected="identical",
                     measured=f"max rel diff {np.max(np.abs(mixed1 / fixed - 1)):.1e}",
                     tolerance="rel 1e-5 (float32)",
                     agree=bool(np.max(np.abs(mixed1 / fixed - 1)) < 1e-5)),
    ]  # fmt: skip
    curves = [("PI", g("linear")), ("NTK-aware", ntk), ("NTK-old", g("ntk_old")),
              ("NTK-fixed", fixed), ("NTK-mixed b=0.625", g("ntk_mixed", mix_b=0.625)),
              ("YaRN / by-parts (L0=4096)", g("yarn"))]  # fmt: skip
    return claims, curves


def _order_claims(rows: dict, train_acc: dict, config) -> tuple[list, list]:
    """Su's qualitative orderings, on the natural-text accuracy at 8L (and repeated for log n)."""
    same, check = float(config.tolerance.same), bool(config.check_order)
    nat = {name: r["natural"] for name, r in rows.items()}
    windows = [int(w) for w in config.rerope_windows]
    best_w = max(
        (w for w in windows if w < config.model.train_len), key=lambda w: nat[f"ReRoPE w={w}"]
    )
    mixed = f"NTK-mixed b={config.mix_b}"
    checks = [
        ("PI < Baseline", nat["PI"] < nat["Baseline"], f"{nat['PI']:.3f} vs {nat['Baseline']:.3f}"),
        ("Baseline < NTK-old and NTK-fixed",
         nat["Baseline"] < min(nat["NTK-old"], nat["NTK-fixed"]),
         f"{nat['Baseline']:.3f} vs {nat['NTK-old']:.3f}, {nat['NTK-fixed']:.3f}"),
        ("NTK-old ≈ NTK-fixed", abs(nat["NTK-old"] - nat["NTK-fixed"]) <= same,
         f"{nat['NTK-old']:.3f} vs {nat['NTK-fixed']:.3f}"),
        ("NTK-fixed < NTK-mixed", nat["NTK-fixed"] < nat[mixed],
         f"{nat['NTK-fixed']:.3f} vs {nat[mixed]:.3f}"),
        (f"NTK-mixed < best ReRoPE (w={best_w})", nat[mixed] < nat[f"ReRoPE w={best_w}"],
         f"{nat[mixed]:.3f} vs {nat[f'ReRoPE w={best_w}']:.3f}"),
        ("best ReRoPE ≈ train-length accuracy",
         abs(nat[f"ReRoPE w={best_w}"] - train_acc["plain"]) <= same,
         f"{nat[f'ReRoPE w={best_w}']:.3f} vs {train_acc['plain']:.3f}"),
        ("ReRoPE w=L collapses (below best ReRoPE and Baseline)",
         nat[f"ReRoPE w={windows[-1]}"] < min(nat["Baseline"], nat[f"ReRoPE w={best_w}"]) - same,
         f"{nat[f'ReRoPE w={windows[-1]}']:.3f}"),
    ]  # fmt: skip
    methods = [n for n in rows if not n.endswith(("-log n", "-log n†"))]
    for kind in ("natural", "repeated"):
        wins = [n for n in methods if rows[n + "-log n"][kind] > rows[n + "-log n†"][kind]
                > rows[n][kind]]  # fmt: skip
        checks.append((f"log n > log n† > plain ({kind})", len(wins) == len(methods),
                       f"holds for {len(wins)}/{len(methods)} methods"))  # fmt: skip
    claims = [
        report.claim(name, source=SOURCE, expected="holds",
                     measured=f"{text} ({'holds' if ok else 'does not hold'})",
                     tolerance=f"≈ means within {same}", agree=bool(ok) if check else None)
        for name, ok, text in checks
    ]  # fmt: skip
    notes = [f"Su's ordering '{name}' does not hold here: {text}." for name, ok, text in checks
             if not ok]  # fmt: skip
    return claims, notes


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    data_cfg = data.DataConfig(**{**config.data.to_dict(), "files": tuple(config.data.files)})
    base_cfg = lm_config(config.model)
    train_cfg = train.TrainConfig(**config.train.to_dict())
    length = train_cfg.seq_len
    if base_cfg.train_len != length:
        raise ValueError("model.train_len must equal train.seq_len")
    eval_len = int(config.eval_factor) * length
    corpus = data.load_corpus(data_cfg)
    writer = metrics.MetricsWriter(workdir)

    mesh = sharding.data_mesh(config.num_devices or None)
    models, states, train_acc = {}, {}, {}
    for i, (name, scale) in enumerate((("plain", "inverse_sqrt"), ("logn", "logn"))):
        cfg = base_cfg.with_attention(attention_scale=scale)
        fit = train.fit(cfg, train_cfg, corpus, workdir / name, seed=config.seed, mesh=mesh,
                        name=f"rope_extrapolation/{name}", metrics_file=False)  # fmt: skip
        models[name], states[name] = cfg, nnx.state(fit.model)
        loss = fit.history[-1].get("loss", float("nan")) if fit.history else float("nan")
        at_l = train.evaluate(fit.model, data.eval_windows(corpus.heldout, 64, length + 1))
        train_acc[name] = at_l["accuracy"]
        values = {"train_loss": loss, f"{name}_accuracy_at_L": at_l["accuracy"]}
        metrics.check_finite(i, values, writer)
        writer.write(i, model=name, **values)

    natural = data.eval_windows(corpus.heldout, config.eval_windows, eval_len + 1)
    repeated = _repeated_windows(
        corpus.heldout, config.repeat_windows, config.repeat_passage, eval_len + 1
    )
    methods = _methods(config, length)
    rows, curves = {}, {}
    progress = metrics.Progress("rope_extrapolation/eval", len(methods) * len(SCALE_VARIANTS))
    for m, (method, overrides) in enumerate(methods):
        for v, (suffix, model_name, scale) in enumerate(SCALE_VARIANTS):
            model = _variant(models[model_name], states[model_name], attention_scale=scale,
                             **overrides)  # fmt: skip
            acc_nat = _accuracy_by_position(model, natural, config.eval_chunk, config.jit_eval)
            acc_rep = _accuracy_by_position(model, repeated, config.eval_chunk, config.jit_eval)
            row = dict(natural=float(acc_nat.mean()), repeated=float(acc_rep.mean()),
                       natural_beyond=float(acc_nat[length:].mean()),
                       repeated_beyond=float(acc_rep[length:].mean()),
                       train=train_acc[model_name])  # fmt: skip
            rows[method + suffix] = row
            curves[method + suffix] = acc_nat
            step = len(SCALE_VARIANTS) * m + v + 2
            metrics.check_finite(step, row, writer)
            writer.write(step, method=method + suffix, **row)
            progress.update(step - 1, method + suffix)

    claims, g_curves = _frequency_claims(config)
    order_claims, order_notes = _order_claims(rows, train_acc, config)
    claims += order_claims

    # Su's table layout: method x accuracy at train length / repeated / natural.
    table = report.markdown_table(
        ["method", f"{length} (train)", f"{eval_len} repeated", f"{eval_len} natural"],
        [[n, r["train"], r["repeated"], r["natural"]] for n, r in rows.items()],
    )
    beyond = report.markdown_table(
        ["method", f"repeated, positions >= {length}", f"natural, positions >= {length}"],
        [[n, r["repeated_beyond"], r["natural_beyond"]] for n, r in rows.items()],
    )
    plot_names = [
        _plot_length(curves, length, eval_len, workdir),
        _plot_bars(rows, methods, workdir),
        _plot_multipliers(g_curves, workdir),
    ]
    yarn = rope.RopeScaling("yarn", factor=float(config.eval_factor),
                            original_max_position_embeddings=length)  # fmt: skip
    figures = {f"{kind}/{n}": r[kind] for n, r in rows.items() for kind in ("natural", "repeated")}
    figures |= {"accuracy_at_L/plain": train_acc["plain"], "accuracy_at_L/logn": train_acc["logn"]}
    figures["yarn_attention_factor"] = float(rope.rope_frequencies(yarn, 2, 1e4)[1])
    notes = [
        "Train-length column: accuracy of the trained model at L with no scaling (k = 1 there), "
        "as in Su's table where it is constant per model.",
        f"Repeated set: a held-out passage of {config.repeat_passage} bytes tiled to {eval_len}; "
        "copying it needs attention beyond L.",
        "Scale variants: plain = inverse_sqrt; log n† = max(1, log_L n) on the plain model; "
        "log n = the model pre-trained with log_L n (no max), evaluated with it.",
        "Attention config of the YaRN row: "
        + str(attention.describe(models["plain"].with_attention(**methods[6][1]).attention)),
    ]
    if not config.check_order:
        notes.append("Quick run: orderings are reported, not checked (tiny model, few windows).")
    notes += order_notes
    return {
        "summary": (
            f"Two {base_cfg.num_layers}-layer, width-{base_cfg.embed_dim}, single-head byte LMs "
            f"(plain and log-n pre-trained) trained {train_cfg.num_steps} steps at L = {length} on "
            f"{corpus.train.size:,} stdlib bytes; {len(rows)} variants evaluated without "
            f"fine-tuning at {eval_len} on {natural.shape[0]} natural and {repeated.shape[0]} "
            f"repeated held-out windows ({data.split_fingerprint(corpus)})."
        ),
        "figures": figures,
        "claims": claims,
        "tables": {
            f"Accuracy at {eval_len} (Su's layout)": table,
            f"Accuracy beyond the training length {length}": beyond,
        },  # fmt: skip
        "plots": plot_names,
        "notes": notes,
    }


def _plot_length(curves, length, eval_len, workdir):
    fig, ax = plots.new_figure(size=(6.5, 4.2))
    ells = np.arange(1, eval_len + 1)
    for name, acc in curves.items():
        if name.endswith("-log n†") or name.startswith("Leaky") or name == "NTK-aware-log n":
            continue
        ax.plot(ells, np.cumsum(acc) / ells, lw=1, label=name,
                ls="--" if name.endswith("-log n") else "-")  # fmt: skip
    ax.axvline(length, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluation length ℓ (natural text; static scalings are causal)")
    ax.set_ylabel("accuracy over the first ℓ positions")
    ax.legend(fontsize=5, ncol=2)
    return plots.save_figure(fig, workdir, "accuracy_vs_length.png")


def _plot_bars(rows, methods, workdir):
    fig, axes = plots.new_figure(ncols=2, size=(6.5, 4.0))
    names = [m for m, _ in methods]
    x = np.arange(len(names))
    for ax, kind in zip(axes[0], ("repeated", "natural"), strict=True):
        for j, (suffix, _, _) in enumerate(SCALE_VARIANTS):
            ax.bar(x + (j - 1) * 0.27, [rows[n + suffix][kind] for n in names], 0.27,
                   label=suffix.lstrip("-") or "plain")  # fmt: skip
        ax.set_xticks(x, names, rotation=70, fontsize=6)
        ax.set_title(f"{kind} text at 8L")
        ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7)
    return plots.save_figure(fig, workdir, "accuracy_bars.png")


def _plot_multipliers(g_curves, workdir):
    fig, ax = plots.new_figure()
    for name, g in g_curves:
        ax.plot(np.arange(1, len(g) + 1), g, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("pair m = i + 1 (low digit = high frequency)")
    ax.set_ylabel("frequency multiplier g_i")
    ax.set_title("d = 128, k = 8")
    ax.legend(fontsize=7)
    return plots.save_figure(fig, workdir, "frequency_multipliers.png")
