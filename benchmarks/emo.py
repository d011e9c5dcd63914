"""Time and peak memory of the fused EMO LM-head loss against CE alone and the reference form.

Three jitted ``value_and_grad`` (w.r.t. hidden states and head), same inputs, dtype and device:

* ``ce``: cross-entropy alone from the full ``[N, V]`` logits (the floor EMO training pays on top);
* ``reference``: a direct port of github.com/DRSY/EMO (full logits, softmax, one-hot + 1e-15
  target, two ``[N, V] × [V, H]`` products), mixed as ½(MLE + sg(MLE/EMO)·EMO);
* ``fused``: :func:`jaxlab.emo.lm_head_loss` (paper_emo preset, vocabulary chunks, custom VJP).

Peak memory is XLA's compiled memory analysis (temporary buffers, and temporaries + outputs +
arguments), so it is deterministic. Goals (issue 13): fused peak ≤ 1/4 of the reference's at
V = 32k, time no worse than the reference, and within 1.3× of CE alone.

    python benchmarks/emo.py [--quick] [--chunk 8192]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab import emo


def make_losses(chunk: int):
    preset = emo.PRESETS["paper_emo"]

    def ce(h, w, labels, cost):
        del cost
        logits = jnp.dot(h, w.T, preferred_element_type=jnp.float32)
        return emo.masked_mean(emo.cross_entropy_from_logits(logits, labels), labels >= 0)

    def reference(h, w, labels, cost):
        mle, val = emo.reference_losses(h, w, labels, cost)
        return emo.combine(mle, val, labels >= 0, preset)[0]

    def fused(h, w, labels, cost):
        return emo.lm_head_loss(h, w, labels, cost, preset=preset, chunk_size=chunk)[0]

    return {"ce": ce, "reference": reference, "fused": fused}


def memory(fn, args) -> dict:
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    temp = stats.temp_size_in_bytes
    total = temp + stats.output_size_in_bytes + stats.argument_size_in_bytes
    return {"temp_mib": temp / 2**20, "total_mib": (total - stats.alias_size_in_bytes) / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N=256, V in {2048, 8192}, H=64 (full: N in {1024, 2048}, V in {8k, 32k}, H=256)",
    )
    parser.add_argument("--chunk", type=int, default=8192, help="fused vocabulary chunk")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", help="comma-separated N (overrides the grid)")
    parser.add_argument("--vocab", help="comma-separated V (overrides the grid)")
    parser.add_argument("--hidden", help="comma-separated H (overrides the grid)")
    args = parser.parse_args()
    parse = lambda s, d: tuple(int(x) for x in s.split(",")) if s else d  # noqa: E731
    tokens = parse(args.tokens, (256,) if args.quick else (1024, 2048))
    vocabs = parse(args.vocab, (2048, 8192) if args.quick else (8192, 32768))
    hiddens = parse(args.hidden, (64,) if args.quick else (256,))

    timing.print_machine()
    print(f"fused chunk = {args.chunk}; value_and_grad w.r.t. (h, W); float32")
    losses = make_losses(args.chunk)
    header = [
        "N",
        "V",
        "H",
        "method",
        "median ms",
        "best ms",
        "temp MiB",
        "total MiB",
        "max |Δloss|",
        "max |Δgrad|",
    ]
    rows, ratios = [], []
    for n in tokens:
        for v in vocabs:
            for hd in hiddens:
                k1, k2, k3 = jax.random.split(jax.random.key(n + v + hd), 3)
                h = jax.random.normal(k1, (n, hd), jnp.float32)
                w = jax.random.normal(k2, (v, hd), jnp.float32) / np.sqrt(hd)
                labels = jax.random.randint(k3, (n,), 0, v).at[::17].set(-100)
                cost = emo.cost_embedding(w)
                inputs = (h, w, labels, cost)
                res = {}
                for name, fn in losses.items():
                    grad_fn = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
                    t = timing.time_fn(grad_fn, *inputs, repeats=args.repeats)
                    res[name] = {**t, **memory(jax.value_and_grad(fn, argnums=(0, 1)), inputs)}
                ref_val, ref_grad = res["reference"]["out"]
                for name, r in res.items():
                    val, grad = r["out"]
                    if name == "ce":
                        dl, dg = "-", "-"
                    else:
                        dl = f"{abs(float(val) - float(ref_val)):.2e}"
                        dg = max(
                            float(jnp.max(jnp.abs(a - b)))
                            for a, b in zip(grad, ref_grad, strict=True)
                        )
                        dg = f"{dg:.2e}"
                    rows.append(
                        [
                            n,
                            v,
                            hd,
                            name,
                            1e3 * r["median_s"],
                            1e3 * r["best_s"],
                            r["temp_mib"],
                            r["total_mib"],
                            dl,
                            dg,
                        ]
                    )
                f, rf, c = res["fused"], res["reference"], res["ce"]
                ratios.append(
                    [
                        n,
                        v,
                        hd,
                        f["temp_mib"] / rf["temp_mib"],
                        f["total_mib"] / rf["total_mib"],
                        f["median_s"] / rf["median_s"],
                        f["median_s"] / c["median_s"],
                        rf["median_s"] / c["median_s"],
                    ]
                )
    print(timing.markdown_table(header, rows))
    print()
    print(
        "Goals: fused/reference peak <= 0.25 at V=32k; fused/reference time <= 1; "
        "fused/CE time <= 1.3"
    )
    print(
        timing.markdown_table(
            [
                "N",
                "V",
                "H",
                "fused/ref temp",
                "fused/ref total",
                "fused/ref time",
                "fused/CE time",
                "ref/CE time",
            ],
            ratios,
        )
    )


if __name__ == "__main__":
    main()
