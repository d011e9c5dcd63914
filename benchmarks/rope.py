"""Times ``jaxlab.rope.apply_rope`` against straightforward RoPE implementations on the same arrays.

Baselines (all jitted, same inputs, dtype and device):

* ``hf_style``: the Hugging Face recipe ``x·cat(cos, cos) + rotate_half(x)·cat(sin, sin)``;
* ``complex``: pairs as complex numbers times ``exp(i·n·f)``.

Also times ReRoPE prefill logits (two score matrices) against plain RoPE logits, the cost that
Su (kexue.fm/archives/9708) names. Prints the machine first, then a Markdown table with median
and best times, the ratio to jaxlab, and the max abs difference to jaxlab's output.

    python benchmarks/rope.py [--quick]
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab import rope
from jaxlab.rope import rerope


def hf_style(x, positions, inv_freq):
    angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    emb = jnp.concatenate([angles, angles], axis=-1)
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[None, None] + rotated * sin[None, None]


def complex_style(x, positions, inv_freq):
    half = x.shape[-1] // 2
    xf = x.astype(jnp.float32)
    z = jax.lax.complex(xf[..., :half], xf[..., half:])
    angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    z = z * jnp.exp(1j * angles.astype(jnp.complex64))[None, None]
    return jnp.concatenate([z.real, z.imag], axis=-1).astype(x.dtype)


def jaxlab_style(x, positions, inv_freq):
    return rope.apply_rope(x, positions[None, None], inv_freq)


def plain_logits(q, k, positions, inv_freq):
    rq = rope.apply_rope(q, positions, inv_freq)
    rk = rope.apply_rope(k, positions, inv_freq)
    return rq @ rk.T


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    timing.print_machine()
    print("load average:", os.getloadavg())
    b, h, length, k = (2, 4, 512, 64) if args.quick else (8, 8, 2048, 128)
    rng = np.random.default_rng(0)
    inv_freq = rope.base_inv_freq(k, 1e4)
    positions = jnp.arange(length, dtype=jnp.int32)
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        x = jnp.asarray(rng.standard_normal((b, h, length, k)), dtype)
        results = {
            name: timing.time_fn(jax.jit(fn), x, positions, inv_freq)
            for name, fn in (
                ("jaxlab apply_rope", jaxlab_style),
                ("hf_style", hf_style),
                ("complex", complex_style),
            )
        }
        ref = results["jaxlab apply_rope"]
        for name, res in results.items():
            diff = float(jnp.max(jnp.abs(res["out"].astype(jnp.float32) - ref["out"])))
            rows.append([
                f"apply [{b},{h},{length},{k}] {jnp.dtype(dtype).name}", name,
                f"{res['compile_s']:.2f}", f"{res['median_s'] * 1e3:.3f}",
                f"{res['best_s'] * 1e3:.3f}", f"{res['median_s'] / ref['median_s']:.2f}",
                f"{diff:.2e}",
            ])  # fmt: skip
    q, kk = (jnp.asarray(rng.standard_normal((length, k)), jnp.float32) for _ in range(2))
    plain = timing.time_fn(jax.jit(plain_logits), q, kk, positions, inv_freq)
    rerope_res = timing.time_fn(
        jax.jit(lambda q, k, f: rerope.rerope_logits(q, k, inv_freq=f, window=length // 4)),
        q, kk, inv_freq,
    )  # fmt: skip
    causal = jnp.tril(jnp.ones((length, length), bool))
    for name, res in (("plain RoPE logits", plain), ("ReRoPE logits (w=L/4)", rerope_res)):
        diff = float(jnp.max(jnp.abs(jnp.where(causal, res["out"] - plain["out"], 0.0))))
        rows.append([
            f"logits [{length},{k}] float32", name, f"{res['compile_s']:.2f}",
            f"{res['median_s'] * 1e3:.3f}", f"{res['best_s'] * 1e3:.3f}",
            f"{res['median_s'] / plain['median_s']:.2f}", f"{diff:.2e} (differs by design)"
            if name.startswith("ReRoPE") else "0",
        ])  # fmt: skip
    header = ["case", "implementation", "compile s", "median ms", "best ms", "ratio", "max |diff|"]
    print(timing.markdown_table(header, rows))


if __name__ == "__main__":
    main()
