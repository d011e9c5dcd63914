"""Time and peak memory of the fused EMO LM-head loss against CE alone and the reference form.

Jitted ``value_and_grad`` (w.r.t. hidden states and head), same inputs, dtype and device:

* ``ce``: cross-entropy alone from the full ``[N, V]`` logits (the floor EMO training pays on top);
* ``ce_chunked``: :func:`jaxlab.emo.lm_head_cross_entropy`, CE alone on the fused path (same token
  chunks, gradient in the forward pass): the like-for-like baseline for what EMO adds;
* ``reference``: a direct port of github.com/DRSY/EMO (full logits, softmax, one-hot + 1e-15
  target, two ``[N, V] × [V, H]`` products), mixed as ½(MLE + sg(MLE/EMO)·EMO);
* ``fused``: :func:`jaxlab.emo.lm_head_loss` (paper_emo preset, one-pass token chunks);
* ``fused_vocab`` (with ``--vocab-chunk C``): the vocabulary-chunked path with a recomputing VJP.

Times are medians over repeats of wall time and of process CPU time (all threads; steadier than
wall time on a shared machine). Peak memory is XLA's compiled memory analysis (temporary buffers,
and temporaries + outputs + arguments), so it is deterministic. Goals (issue 13): fused peak ≤ 1/4
of the reference's at V = 32k, time no worse than the reference, and within 1.3× of CE alone.

    python benchmarks/emo.py [--quick] [--token-chunk T] [--vocab-chunk C]
"""

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab import emo
from jaxlab.emo import fused as emo_fused


def make_losses(token_chunk: int | None, vocab_chunk: int | None):
    preset = emo.PRESETS["paper_emo"]

    def ce(h, w, labels, cost):
        del cost
        logits = jnp.dot(h, w.T, preferred_element_type=jnp.float32)
        return emo.masked_mean(emo.cross_entropy_from_logits(logits, labels), labels >= 0)

    def ce_chunked(h, w, labels, cost):
        del cost
        return emo.lm_head_cross_entropy(h, w, labels, token_chunk=token_chunk)[0]

    def reference(h, w, labels, cost):
        mle, val = emo.reference_losses(h, w, labels, cost)
        return emo.combine(mle, val, labels >= 0, preset)[0]

    def fused(h, w, labels, cost):
        return emo.lm_head_loss(h, w, labels, cost, preset=preset, token_chunk=token_chunk)[0]

    def fused_vocab(h, w, labels, cost):
        return emo.lm_head_loss(h, w, labels, cost, preset=preset, vocab_chunk=vocab_chunk)[0]

    out = {"ce": ce, "ce_chunked": ce_chunked, "reference": reference, "fused": fused}
    if vocab_chunk is not None:
        out["fused_vocab"] = fused_vocab
    return out


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_wall_cpu(fn, args, repeats: int) -> dict:
    """Median wall and process-CPU seconds of ``fn(*args)`` after a compile call and a warm-up."""
    out = jax.block_until_ready(fn(*args))
    out = jax.block_until_ready(fn(*args))
    walls, cpus = [], []
    for _ in range(max(repeats, 1)):
        t0, c0 = time.perf_counter(), _cpu_s()
        out = jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
    return {"median_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "out": out}


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
    parser.add_argument("--token-chunk", type=int, help="fused token chunk (default: automatic)")
    parser.add_argument("--vocab-chunk", type=int, help="also time the vocabulary-chunked path")
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
    print(
        f"token chunk = {args.token_chunk or 'auto'}, vocab chunk = {args.vocab_chunk}; "
        "value_and_grad w.r.t. (h, W); float32"
    )
    losses = make_losses(args.token_chunk, args.vocab_chunk)
    header = [
        "N",
        "V",
        "H",
        "method",
        "T",
        "wall ms",
        "CPU ms",
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
                chunk = args.token_chunk or emo_fused.default_token_chunk(n, v)
                res = {}
                for name, fn in losses.items():
                    grad_fn = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
                    t = time_wall_cpu(grad_fn, inputs, args.repeats)
                    res[name] = {**t, **memory(jax.value_and_grad(fn, argnums=(0, 1)), inputs)}
                ref_val, ref_grad = res["reference"]["out"]
                for name, r in res.items():
                    val, grad = r["out"]
                    if name.startswith("ce"):
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
                            chunk if name in ("ce_chunked", "fused") else "-",
                            1e3 * r["median_s"],
                            1e3 * r["cpu_s"],
                            r["temp_mib"],
                            r["total_mib"],
                            dl,
                            dg,
                        ]
                    )
                f, rf, c, cc = res["fused"], res["reference"], res["ce"], res["ce_chunked"]
                ratios.append(
                    [
                        n,
                        v,
                        hd,
                        f["temp_mib"] / rf["temp_mib"],
                        f["total_mib"] / rf["total_mib"],
                        f"{f['median_s'] / rf['median_s']:.2f} / {f['cpu_s'] / rf['cpu_s']:.2f}",
                        f"{f['median_s'] / c['median_s']:.2f} / {f['cpu_s'] / c['cpu_s']:.2f}",
                        f"{f['median_s'] / cc['median_s']:.2f} / {f['cpu_s'] / cc['cpu_s']:.2f}",
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
                "fused/ref time (wall / CPU)",
                "fused/CE time (wall / CPU)",
                "fused/CE-chunked time (wall / CPU)",
            ],
            ratios,
        )
    )


if __name__ == "__main__":
    main()
