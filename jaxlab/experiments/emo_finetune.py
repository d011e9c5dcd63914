"""EMO vs cross-entropy fine-tuning of a tiny byte LM: held-out bits/byte, entropy, MAUVE.

Pre-train with CE, copy the LM head as EMO's fixed cost embedding, then fine-tune copies on a
held-out domain with CE, EMO mode 1 (the paper's recipe) and EMO mode 2, on the same batches per
seed. Sample quality of unbiased continuations of held-out prompts: MAUVE against the human
continuations on features of the pre-trained model, distinct-n and repetition rate.
References: Ren et al. (2023), arXiv:2310.04691; Su, https://kexue.fm/archives/9797; MAUVE:
Pillutla et al. (2021), arXiv:2102.01454.
"""

from __future__ import annotations

import functools
import pathlib
import sysconfig

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jaxlab import data, metrics, plots, report, sharding, train
from jaxlab.config_args import to_dataclass
from jaxlab.emo import lm as emo_lm
from jaxlab.emo import quality
from jaxlab.models import lm_config

PAPER = "Ren et al. 2023, arXiv:2310.04691, Table 1 (EMO above MLE on MAUVE)"


def _corpora(cfg):
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    pre_files = tuple(
        str(p) for p in data.stdlib_files() if not rel(p).startswith(tuple(cfg.exclude))
    )
    domain = tuple(str(root / f) for f in cfg.domain_files)
    pre = data.DataConfig(pre_files, cfg.heldout_every, cfg.pretrain_max_bytes)
    return data.load_corpus(pre), data.load_corpus(data.DataConfig(domain, cfg.heldout_every))


def _finetune(graphdef, state, step_fn, tokens, cfg, key, log):
    sample = jax.jit(
        functools.partial(data.sample_windows, num=cfg.batch_size, length=cfg.seq_len + 1)
    )
    for step in range(cfg.num_steps):
        state, stats = step_fn(state, sample(tokens, key=jax.random.fold_in(key, step)))
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.num_steps:
            log(step + 1, {k: float(v) for k, v in stats.items()})
    return nnx.merge(graphdef, state)[0]


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    model_cfg = lm_config(config.model)
    pre_cfg = to_dataclass(train.TrainConfig, config.pretrain)
    ft_cfg = to_dataclass(train.TrainConfig, config.finetune)
    ev = config.eval
    pre_corpus, dom = _corpora(config.data)
    mesh = sharding.data_mesh(config.num_devices or None)
    writer = metrics.MetricsWriter(workdir)

    pre = train.fit(
        model_cfg,
        pre_cfg,
        pre_corpus,
        workdir,
        seed=config.seed,
        mesh=mesh,
        name="emo_finetune pretrain",
        metrics_file=False,
    )
    for rec in pre.history:
        writer.write(rec["step"], phase="pretrain", **{k: v for k, v in rec.items() if k != "step"})
    base = emo_lm.attach_cost_embedding(pre.model)  # the frozen copy every EMO branch uses
    windows = data.eval_windows(dom.heldout, ev.windows, ft_cfg.seq_len + 1)
    prompts = data.eval_windows(dom.heldout, ev.num_samples, ev.prefix_len + ev.continuation_len)

    def evaluate(model, key):
        q, cont = emo_lm.continuation_quality(
            model, base, prompts, ev.prefix_len, ev.distinct_n, ev.repetition_n, key=key
        )
        return dict(
            bits_per_byte=train.evaluate(model, windows)["bits_per_byte"],
            entropy_bits=emo_lm.entropy_bits(model, windows),
            **q,
        ), cont

    keys = [jax.random.key(config.seed + 1 + s) for s in range(config.num_seeds)]
    rows = {"pretrained": [evaluate(base, jax.random.fold_in(k, 1))[0] for k in keys]}
    graphdef, base_state = nnx.split(
        (base, nnx.Optimizer(base, train.make_optimizer(ft_cfg), wrt=nnx.Param))
    )
    dom_tokens = sharding.replicate(jnp.asarray(dom.train), mesh)
    curves, samples = {}, {}
    for branch, loss_name in config.branches.items():
        cfg = to_dataclass(train.TrainConfig, config.finetune, loss=loss_name)
        step_fn = train.make_train_step(graphdef, cfg, mesh)
        rows[branch] = []
        for s, key in enumerate(keys):
            curve = curves.setdefault((branch, s), [])

            def log(step, stats, branch=branch, s=s, curve=curve):
                curve.append({"step": step, **stats})
                metrics.check_finite(step, {"loss": stats["loss"]}, writer)
                writer.write(pre_cfg.num_steps + step, phase=f"{branch}/seed{s}", **stats)

            state = jax.tree.map(jnp.copy, base_state)  # the step donates its state
            model = _finetune(graphdef, state, step_fn, dom_tokens, cfg, key, log)
            row, cont = evaluate(model, jax.random.fold_in(key, 1))
            rows[branch].append(row)
            samples.setdefault(branch, cont)
            print(
                f"emo_finetune: {branch} seed {s}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in row.items()),
                flush=True,
            )

    human = prompts[:, ev.prefix_len :]
    names = list(rows[next(iter(config.branches))][0])
    mean = {b: {k: float(np.mean([r[k] for r in rs])) for k in names} for b, rs in rows.items()}
    std = {
        b: {k: float(np.std([r[k] for r in rs], ddof=1)) for k in names} for b, rs in rows.items()
    }
    table = [[b] + [f"{mean[b][k]:.4f} ± {std[b][k]:.4f}" for k in names] for b in rows]
    table.append(
        ["human (held-out)", "", "", ""]
        + [f"{quality.distinct_n(human, n):.4f}" for n in ev.distinct_n]
        + [f"{quality.repetition_rate(human, ev.repetition_n):.4f}"]
    )

    def diff(branch, key):
        return quality.paired_difference_ci(
            [r[key] for r in rows[branch]], [r[key] for r in rows["ce"]]
        )

    claims, figures = [], {}
    for branch in ("emo_mode1", "emo_mode2"):
        d, lo, hi = diff(branch, "mauve")
        name = f"MAUVE: {branch} - CE > 0 (95% CI over {config.num_seeds} seeds)"
        if branch == "emo_mode1":  # the paper's LM experiments use this recipe (gpt2.py "emo")
            claims.append(report.interval_above(name, (lo, hi), 0.0, source=PAPER, measured=d))
        else:  # mode 2 is the reference's continual-pre-training recipe: no MAUVE claim
            claims.append(
                report.reported(
                    name,
                    f"{d:.4g} [{lo:.4g}, {hi:.4g}]",
                    source="github.com/DRSY/EMO emo_patch.py",
                    expected="no MAUVE claim for mode 2",
                    why="not claimed by the paper",
                )
            )
        db, _, _ = diff(branch, "bits_per_byte")
        claims.append(
            report.reported(
                f"held-out bits/byte: {branch} - CE",
                db,
                source="arXiv:2310.04691 Table 1 (PPL)",
                expected="EMO's PPL comparable or better in the paper",
                why="MLE optimises bits/byte directly; reported, not checked",
            )
        )
        figures |= {f"mauve_diff_{branch}": d, f"bits_diff_{branch}": db}
    claims.append(
        report.at_most(
            "CE fine-tuning lowers held-out domain bits/byte",
            mean["ce"]["bits_per_byte"],
            mean["pretrained"]["bits_per_byte"],
            source="fine-tuning on the domain",
            sanity=True,
        )
    )
    m1 = curves[("emo_mode1", 0)][-1]
    claims.append(
        report.within(
            "mode 1's loss value equals its MLE component",
            m1["loss"],
            m1["mle"],
            source="kexue.fm/archives/9797; DRSY/EMO issue #7",
            rel=1e-4,
            sanity=True,
        )
    )
    figures |= {f"{b}_{k}": v for b, d in mean.items() for k, v in d.items()}

    fig, axes = plots.new_figure(ncols=3)
    axes = axes.ravel()
    for i, branch in enumerate(config.branches):
        c, color = curves[(branch, 0)], f"C{i}"
        st = [r["step"] for r in c]
        axes[0].plot(st, [r.get("mle", r["loss"]) for r in c], color=color, label=branch)
        if "emo" in c[0]:  # the logged EMO value is the preset's (mode 2: EMO + p_t)
            axes[1].plot(st, [r["emo"] for r in c], color=color, label=branch)
            axes[2].plot(st, [r["weight_mle"] for r in c], color=color, label=f"{branch} w_mle")
            axes[2].plot(
                st, [r["weight_emo"] for r in c], "--", color=color, label=f"{branch} w_emo"
            )
    axes[2].set_yscale("log")
    for ax, title in zip(
        axes, ("MLE component (nats)", "EMO component", "effective weights"), strict=True
    ):
        ax.set_xlabel("fine-tuning step")
        ax.set_title(title)
        ax.legend(fontsize=7)
    curves_png = plots.save_figure(fig, workdir, "finetune_components.png")
    fig, axes = plots.new_figure(ncols=3)
    axes = axes.ravel()
    for ax, key in zip(axes, ("bits_per_byte", "entropy_bits", "mauve"), strict=True):
        ax.bar(list(rows), [mean[b][key] for b in rows], yerr=[std[b][key] for b in rows])
        ax.set_title(key)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    bars_png = plots.save_figure(fig, workdir, "branches.png")

    show = lambda b: bytes(np.asarray(samples[b][0], np.uint8)).decode("utf-8", "replace")  # noqa: E731
    return {
        "summary": (
            f"TinyLM ({model_cfg.num_layers} layers, width {model_cfg.embed_dim}) pre-trained "
            f"{pre_cfg.num_steps} CE steps on {pre_corpus.train.size:,} bytes of stdlib source "
            f"(without {', '.join(config.data.exclude)}), fine-tuned {ft_cfg.num_steps} steps on "
            f"{dom.train.size:,} bytes of {', '.join(config.data.domain_files)} per branch and "
            f"seed ({config.num_seeds} seeds, same batches across branches); {ev.num_samples} "
            f"unbiased samples of {ev.continuation_len} bytes after {ev.prefix_len}-byte held-out "
            "prompts; MAUVE on mean-pooled final hidden states of the pre-trained model "
            "(own implementation, tested against the mauve-text package)."
        ),
        "figures": figures,
        "claims": claims,
        "tables": {
            "Held-out domain, mean ± std over seeds": report.markdown_table(
                ["branch", *names], table
            ),
        },
        "plots": [curves_png, bars_png],
        "notes": [
            f"Loss names (jaxlab.train.LOSSES): {dict(config.branches)}; EMO branches use the "
            "fused chunked LM-head loss and the frozen pre-trained head as cost.",
            f"A CE sample: {show('ce')!r}; an EMO mode 1 sample: {show('emo_mode1')!r}; "
            f"an EMO mode 2 sample: {show('emo_mode2')!r}.",
            "Mode 2 uses the reference's value EMO + p_t (the stop-gradient quirk): for confident "
            "correct tokens MLE -> 0 while EMO + p_t -> 1, so sg(EMO/MLE) explodes (mean weight on "
            f"grad MLE at the end of seed 0: {curves[('emo_mode2', 0)][-1]['weight_mle']:.4g}) "
            "and pushes towards a point mass; compare the branches' entropies.",
        ],
    }
