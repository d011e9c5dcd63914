"""RoPE extrapolation to 8x the training length: PI, NTK, YaRN, ReRoPE, log n (Su 9706/9708).

Two tiny single-head byte LMs are trained at length L: one plain, one with pre-training log-n
attention scaling. Each is then evaluated without fine-tuning at k·L (k = 8) under every
context-extension method, which only changes RoPE frequencies, the cos/sin magnitude, relative
positions (ReRoPE) or the query scale (log n†); RoPE has no parameters, so every variant is the
same trained state merged into a graphdef of another config. Su's orderings are decided by
bootstrap intervals over the evaluation windows (:func:`jaxlab.rope.evaluation.bootstrap_ci`).
"""

import pathlib

import jax
import ml_collections
import numpy as np
from flax import nnx

from jaxlab import attention, config_args, data, metrics, plots, report, rope, sharding, train
from jaxlab.models import LMConfig, lm_config
from jaxlab.rope import evaluation

SOURCE = "Su, kexue.fm/archives/9706 and /9708 (GAU, L = 512, test at 4096)"
SCALE_VARIANTS = (("", "plain", "inverse_sqrt"), ("-log n†", "plain", "logn_posthoc"),
                  ("-log n", "logn", "logn"))  # fmt: skip


def _methods(config) -> list[tuple[str, dict]]:
    k = float(config.eval_factor)

    def scaled(kind, **extra):
        return {"rope_scaling": (("rope_type", kind), ("factor", k), *extra.items())}

    methods = [("Baseline", {}), ("PI", scaled("linear")), ("NTK-aware", scaled("ntk_aware")),
               ("NTK-old", scaled("ntk_old")), ("NTK-fixed", scaled("ntk_fixed")),
               (f"NTK-mixed b={config.mix_b}", scaled("ntk_mixed", mix_b=float(config.mix_b))),
               ("YaRN", scaled("yarn"))]  # fmt: skip
    methods += [(f"ReRoPE w={w}", {"rerope_window": int(w)}) for w in config.rerope_windows]
    methods += [(f"Leaky ReRoPE w={w} k={kk:g}", {"rerope_window": int(w),
                 "rerope_leaky_k": float(kk)}) for w, kk in config.leaky]  # fmt: skip
    return methods


def _model_config(config, **overrides) -> LMConfig:
    """The one place an LMConfig is built: the model section plus attention ``overrides``."""
    return lm_config(config.model).with_attention(**overrides)


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    data_cfg = config_args.to_dataclass(data.DataConfig, config.data)
    train_cfg = config_args.to_dataclass(train.TrainConfig, config.train)
    length, k = train_cfg.seq_len, int(config.eval_factor)
    if config.model.train_len != length:
        raise ValueError("model.train_len must equal train.seq_len")
    corpus = data.load_corpus(data_cfg)
    writer = metrics.MetricsWriter(workdir)
    mesh = sharding.data_mesh(config.num_devices or None)
    states, losses = {}, {}
    for i, (name, scale) in enumerate((("plain", "inverse_sqrt"), ("logn", "logn"))):
        fit = train.fit(_model_config(config, attention_scale=scale), train_cfg, corpus,
                        workdir / name, seed=config.seed, mesh=mesh,
                        name=f"rope_extrapolation/{name}", metrics_file=False)  # fmt: skip
        states[name] = nnx.state(fit.model)
        losses[name] = fit.history[-1].get("loss", float("nan")) if fit.history else float("nan")
        metrics.check_finite(i, {"train_loss": losses[name]}, writer)
        writer.write(i, model=name, train_loss=losses[name])

    windows = dict(
        natural=data.eval_windows(corpus.heldout, config.eval_windows, k * length + 1),
        repeated=evaluation.repeated_windows(corpus.heldout, config.repeat_windows,
                                             config.repeat_passage, k * length + 1),
    )  # fmt: skip
    methods = _methods(config)
    hits = {}  # variant -> kind -> (W, k·L) hits
    progress = metrics.Progress("rope_extrapolation/eval", len(methods) * len(SCALE_VARIANTS))
    for m, (method, overrides) in enumerate(methods):
        for v, (suffix, model_name, scale) in enumerate(SCALE_VARIANTS):
            cfg = _model_config(config, attention_scale=scale, **overrides)
            hits[method + suffix] = {
                kind: train.window_hits(
                    cfg, states[model_name], w, chunk=config.eval_chunk, use_jit=config.jit_eval
                )
                for kind, w in windows.items()
            }
            row = {kind: float(h.mean()) for kind, h in hits[method + suffix].items()}
            step = len(SCALE_VARIANTS) * m + v + 2
            metrics.check_finite(step, row, writer)
            writer.write(step, method=method + suffix, **row)
            progress.update(step - 1, method + suffix)
    # Accuracy at the training length: the first L positions of the same natural windows.
    in_range = {s: hits["Baseline" + s]["natural"][:, :length].mean(1) for s, _, _ in
                SCALE_VARIANTS}  # fmt: skip
    per_window = {n: {kind: h.mean(1) for kind, h in d.items()} for n, d in hits.items()}
    b, train_len = config.bootstrap, config.model.train_len
    claims = _frequency_claims(config) + evaluation.order_claims(
        per_window, in_range[""], key=jax.random.fold_in(jax.random.key(config.seed), 7),
        rerope_windows=config.rerope_windows, train_len=train_len, mix_b=config.mix_b,
        same=float(config.tolerance.same), num_resamples=b.num_resamples, level=b.level,
        source=SOURCE)  # fmt: skip
    claims += evaluation.magnitude_rows(per_window, train_len=train_len, mix_b=config.mix_b,
                                        source=SOURCE)  # fmt: skip
    table = report.markdown_table(
        ["method", f"{length} (train, same windows)", f"{k * length} repeated",
         f"{k * length} natural", f"natural, positions >= {length}"],
        [[n, float(in_range[_suffix(n)].mean()), float(h["repeated"].mean()),
          float(h["natural"].mean()), float(h["natural"][:, length:].mean())]
         for n, h in hits.items()],
    )  # fmt: skip
    plot_names = [
        _plot_length({n: h["natural"].mean(0) for n, h in hits.items()}, length, workdir),
        _plot_bars(per_window, methods, workdir),
        _plot_multipliers(workdir),
    ]
    yarn = rope.RopeScaling("yarn", factor=float(k), original_max_position_embeddings=length)
    figures = {f"{kind}/{n}": float(v.mean()) for n, d in per_window.items()
               for kind, v in d.items()}  # fmt: skip
    figures |= {
        f"accuracy_at_L/{s.lstrip('-') or 'plain'}": float(v.mean()) for s, v in in_range.items()
    }
    figures |= {f"train_loss/{n}": v for n, v in losses.items()}
    figures["yarn_attention_factor"] = float(rope.rope_frequencies(yarn, 2, 1e4)[1])
    notes = [
        f"Train-length column: accuracy on the first {length} positions of the same natural "
        "windows as the long-range figures, under the Baseline of each scale variant.",
        f"Repeated set: a held-out passage of {config.repeat_passage} bytes tiled to "
        f"{k * length}; copying it needs attention beyond L.",
        "Scale variants: plain = inverse_sqrt; log n† = max(1, log_L n) on the plain model; "
        "log n = the model pre-trained with log_L n (no max), evaluated with it.",
        f"Orderings: {config.bootstrap.level:.0%} percentile bootstrap over the "
        f"{config.eval_windows} natural / {config.repeat_windows} repeated windows (paired); "
        "'not resolvable at this size' when the interval straddles the threshold. The best "
        "ReRoPE window is chosen on the same windows.",
        "Attention config of the YaRN row: "
        + str(attention.describe(_model_config(config, **dict(methods)["YaRN"]).attention)),
    ]
    return {
        "summary": (
            f"Two {config.model.num_layers}-layer, width-{config.model.embed_dim}, single-head "
            f"byte LMs (plain and log-n pre-trained) trained {train_cfg.num_steps} steps at "
            f"L = {length} on {corpus.train.size:,} stdlib bytes; {len(hits)} variants evaluated "
            f"without fine-tuning at {k * length} on {config.eval_windows} natural and "
            f"{config.repeat_windows} repeated held-out windows ({data.split_fingerprint(corpus)})."
        ),
        "figures": figures,
        "claims": claims,
        "tables": {f"Accuracy at {k * length} (Su's layout)": table},
        "plots": plot_names,
        "notes": notes,
    }


def _suffix(name: str) -> str:
    return next((s for s, _, _ in SCALE_VARIANTS[1:] if name.endswith(s)), "")


def _frequency_claims(config) -> list:
    """Identities of the static scalings at d = 128, k = 8, from the library's frequencies."""
    tol, got = config.tolerance, evaluation.scaling_identities(128, 8.0)
    return [
        report.within("NTK-aware base b' read off rope_frequencies('ntk_aware'), d=128, k=8",
                      got["ntk_aware_base"], 82_684.62, abs=tol.ntk_aware_base, source=SOURCE),
        report.at_most("NTK-mixed with b=1 equals NTK-fixed (max rel. diff of g_i)",
                       got["mixed_one_vs_fixed"], tol.identity_rel, source=SOURCE),
        report.at_most("NTK-mixed with b -> 0 (1e-9) equals PI (max rel. diff of g_i)",
                       got["mixed_zero_vs_pi"], tol.identity_rel, source=SOURCE),
        report.at_most("multiplier table g_i (d=128, k=8; PI, NTK-aware/old/fixed, mixed b=0.5, "
                       "0.625, 0.75): max abs. diff from the 4-decimal table",
                       got["table_max_abs"], tol.multiplier_table_abs, source=SOURCE),
    ]  # fmt: skip


def _plot_length(curves, length, workdir):
    fig, ax = plots.new_figure(size=(6.5, 4.2))
    for name, acc in curves.items():
        if name.endswith("-log n†") or name.startswith("Leaky") or name == "NTK-aware-log n":
            continue
        ells = np.arange(1, len(acc) + 1)
        ax.plot(ells, np.cumsum(acc) / ells, lw=1, label=name,
                ls="--" if name.endswith("-log n") else "-")  # fmt: skip
    ax.axvline(length, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="evaluation length ℓ (natural text; static scalings are causal)",
           ylabel="accuracy over the first ℓ positions")  # fmt: skip
    ax.legend(fontsize=5, ncol=2)
    return plots.save_figure(fig, workdir, "accuracy_vs_length.png")


def _plot_bars(acc, methods, workdir):
    fig, axes = plots.new_figure(ncols=2, size=(6.5, 4.0))
    names = [m for m, _ in methods]
    x = np.arange(len(names))
    for ax, kind in zip(axes[0], ("repeated", "natural"), strict=True):
        for j, (suffix, _, _) in enumerate(SCALE_VARIANTS):
            ax.bar(x + (j - 1) * 0.27, [acc[n + suffix][kind].mean() for n in names], 0.27,
                   label=suffix.lstrip("-") or "plain")  # fmt: skip
        ax.set_xticks(x, names, rotation=70, fontsize=6)
        ax.set(title=f"{kind} text at 8L", ylabel="accuracy")
    axes[0][0].legend(fontsize=7)
    return plots.save_figure(fig, workdir, "accuracy_bars.png")


def _plot_multipliers(workdir):
    fig, ax = plots.new_figure()
    for kind, b in [*evaluation.MULTIPLIER_TABLE, ("yarn", None)]:
        g = evaluation.multipliers64(kind, b)
        ax.plot(np.arange(1, len(g) + 1), g, label=kind + ("" if b is None else f" b={b}"))
    ax.set_yscale("log")
    ax.set(xlabel="pair m = i + 1 (low digit = high frequency)", ylabel="frequency multiplier g_i",
           title="d = 128, k = 8 (yarn: L0 = 4096)")  # fmt: skip
    ax.legend(fontsize=7)
    return plots.save_figure(fig, workdir, "frequency_multipliers.png")
