"""jaxlab unigram tokenizer vs SentencePiece (and BytePiece): same text, vocabulary, threads.

  python benchmarks/tokenizer.py                                  # stdlib text, 8k, 2 threads
  python benchmarks/tokenizer.py --text manpages --vocab 32000 --threads 1
  python benchmarks/tokenizer.py --quick                          # 128 KiB slice, < 1 min

Text: held-out Python standard-library source (``jaxlab.tokenizer.corpus.stdlib_split``, 1 MiB),
or with ``--text manpages`` the translated man pages of ``/usr/share/man`` (20-odd languages,
``corpus.manpage_split``: 1.26 MB, 29,699 lines of test text here).
Vocabulary: a SentencePiece unigram model of ``--vocab`` pieces trained with the spec's SP-ws
arguments (identity normaliser, byte fallback, no whitespace removal; character coverage
0.9995 on the man pages) on at most 4 MiB (8k) or 48 MiB (other sizes: SentencePiece refuses
32k pieces from 4 MiB) of the training part, cached under $JAXLAB_CACHE or /tmp/jaxlab_tok.

Equal threads: ``--threads N`` pins the whole process to N CPUs before JAX starts, gives
SentencePiece ``num_threads=N`` and jaxlab ``Tokenizer(threads=N)``. Every row reports wall
time and the process's CPU time (all threads; robust on a loaded machine) and both ratios
against SentencePiece in the same mode.

Rows: Viterbi (SentencePiece ``encode``) and exact sampling (SentencePiece
``enable_sampling=True, nbest_size=-1, alpha=0.1``; jaxlab FFBS ``alpha=0.1``); jaxlab on both
DP paths: the host C DP (``Tokenizer()``, the default with the compiled extension) and the JAX DP
(``Tokenizer(host_dp=False)``; lattice built by the compiled kernels). BytePiece (Su's one-pass
sampler) is timed when ``bytepiece`` is importable, on the SentencePiece vocabulary converted
to its format (:func:`bytepiece_runs`); otherwise the output says why not.
Checks in the same run: Viterbi ids equal SentencePiece's on every line (both paths), and every
sample decodes back to its line.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import timing  # noqa: E402

TRAIN_BYTES = {8000: 4 << 20}  # training text per vocabulary size; default 48 MiB


def train_bytes(vocab_size: int) -> int:
    return TRAIN_BYTES.get(vocab_size, 48 << 20)


def _texts():
    from jaxlab.tokenizer.corpus import manpage_split, stdlib_split

    return {"stdlib": stdlib_split, "manpages": manpage_split}


def cache_dir() -> pathlib.Path:
    root = pathlib.Path(os.environ.get("JAXLAB_CACHE", tempfile.gettempdir())) / "jaxlab_tok"
    root.mkdir(parents=True, exist_ok=True)
    return root


def training_text(text: str, size: int) -> pathlib.Path:
    """The training part of ``text`` (cut to ``size`` bytes at a newline), written once."""
    path = cache_dir() / f"train_{text}_{size >> 20}m.txt"
    if not path.exists():
        train, _ = _texts()[text]()
        data = train.encode("utf-8")[:size]
        path.write_bytes(data[: data.rfind(b"\n") + 1])
    return path


def cached_model(vocab_size: int = 8000, text: str = "stdlib") -> pathlib.Path:
    """Trains (once) the SP-ws unigram model on the training part of ``text``."""
    from jaxlab.tokenizer import spm

    size = train_bytes(vocab_size)
    name = f"sp_ws_{text}_{vocab_size}_{size >> 20}m"
    path = cache_dir() / f"{name}.model"
    if not path.exists():
        print(f"training SentencePiece {vocab_size} on {text} (once) ...", flush=True)
        extra = {} if text == "stdlib" else {"character_coverage": 0.9995}
        spm.train_sentencepiece(training_text(text, size), cache_dir() / name, vocab_size, **extra)
    return path


def bytepiece_runs(model, lines: list[str]) -> dict:
    """BytePiece's Viterbi and sampler on ``lines`` (empty dict, printed reason, if absent).

    BytePiece gets the SentencePiece model's own vocabulary (its trainer is pure Python and
    takes far longer than this benchmark): every NORMAL piece as UTF-8 bytes with ``▁`` as a
    space and count exp(score), plus the 256 single bytes at the unknown score (min - 10)
    so that every text has a segmentation. Its ids are BytePiece's own, so only the speed is
    compared. BytePiece is single-threaded whatever ``--threads`` says.
    """
    try:
        import bytepiece
    except ImportError as e:
        print(f"BytePiece: not importable ({e}); rows skipped")
        return {}
    import base64
    import math

    from jaxlab.tokenizer.model import NORMAL

    counts: dict[bytes, float] = {}
    normal = [i for i, t in enumerate(model.types) if t == NORMAL]
    low = math.exp(min(float(model.scores[i]) for i in normal) - 10.0)
    for b in range(256):
        counts[bytes([b])] = low
    for i in normal:
        counts[model.pieces[i].replace("\u2581", " ").encode("utf-8")] = math.exp(model.scores[i])
    pieces = {
        base64.b64encode(k).decode(): [j + 3, k.decode(errors="ignore"), v]
        for j, (k, v) in enumerate(counts.items())
    }
    bp = bytepiece.Tokenizer(pieces, seed=0)
    print(f"BytePiece {bytepiece.__file__}: {bp.vocab_size} pieces (the SentencePiece vocabulary)")
    return {
        "BytePiece Viterbi (1 thr, own ids)": lambda: [bp.encode(s) for s in lines],
        "BytePiece sampling alpha=0.1 (1 thr)": lambda: [bp.encode(s, alpha=0.1) for s in lines],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--text", choices=("stdlib", "manpages"), default="stdlib")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2, help="CPUs and threads of everyone")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    # Before the first JAX computation starts its thread pools.
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, set(cpus))
    import jax
    import sentencepiece

    from jaxlab.tokenizer import spm
    from jaxlab.tokenizer.cli import version_line
    from jaxlab.tokenizer.encoder import Tokenizer

    print(f"pinned to CPUs {cpus}; threads = {args.threads} for every library")
    timing.print_machine()
    print(version_line())
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    model_path = cached_model(args.vocab, args.text)
    _, test = _texts()[args.text]()
    if args.quick:
        test = test[: test.rfind("\n", 0, 128 * 1024) + 1]
    lines = test.split("\n")[:-1]
    nbytes = len(test.encode("utf-8"))
    repeats = args.repeats or 3
    print(f"text {args.text}: {nbytes} bytes, {len(lines)} lines; vocab {args.vocab}; "
          f"repeats={repeats}")  # fmt: skip

    n = args.threads
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
    model = spm.from_sentencepiece(model_path)
    host = Tokenizer(model, threads=n)
    jax_dp = Tokenizer(model, threads=n, host_dp=False)
    print(f"jaxlab DP paths: {host.dp_path} / {jax_dp.dp_path}")
    key = jax.random.key(0)
    smp = dict(enable_sampling=True, nbest_size=-1, alpha=0.1, num_threads=n)
    runs = {
        f"SentencePiece Viterbi ({n} thr)": lambda: sp.encode(lines, num_threads=n),
        f"jaxlab Viterbi, host C DP ({n} thr)": lambda: host.encode(lines),
        f"jaxlab Viterbi, JAX DP ({n} CPU)": lambda: jax_dp.encode(lines),
        f"SentencePiece sampling alpha=0.1 ({n} thr)": lambda: sp.encode(lines, **smp),
        f"jaxlab FFBS alpha=0.1, host C DP ({n} thr)": lambda: host.encode(
            lines, alpha=0.1, key=key
        ),
        f"jaxlab FFBS alpha=0.1, JAX DP ({n} CPU)": lambda: jax_dp.encode(
            lines, alpha=0.1, key=key
        ),
    }
    runs.update(bytepiece_runs(model, lines))
    results = {}
    for name, fn in runs.items():
        # Host outputs (lists of ids): nothing to block on.
        r = timing.time_fn(fn, repeats=repeats, block=False)
        cpu = []
        for _ in range(repeats):  # CPU seconds of this process, all threads
            t0 = time.process_time()
            fn()
            cpu.append(time.process_time() - t0)
        r["cpu_s"] = min(cpu)
        results[name] = r
        print(f"  {name}: best {nbytes / r['best_s'] / 1e6:.2f} MB/s, "
              f"{nbytes / r['cpu_s'] / 1e6:.2f} MB per CPU-s", flush=True)  # fmt: skip

    names = list(results)
    sp_vit, jl_vit, jx_vit, sp_smp, jl_smp, jx_smp = names[:6]
    ref = results[sp_vit]["out"]
    bad = {nm: sum(a != b for a, b in zip(results[nm]["out"], ref, strict=True))
           for nm in (jl_vit, jx_vit)}  # fmt: skip
    round_trip = (
        all(
            tok.decode(results[nm]["out"]) == lines
            for nm, tok in ((jl_smp, host), (jx_smp, jax_dp))
        )
        and sp.decode(results[sp_smp]["out"]) == lines
    )
    rows = []
    for name, r in results.items():
        vit = "Viterbi" in name
        base = results[sp_vit if vit else sp_smp]
        ntok = sum(map(len, r["out"]))
        rows.append([
            name, nbytes / r["best_s"] / 1e6, base["best_s"] / r["best_s"],
            nbytes / r["cpu_s"] / 1e6, base["cpu_s"] / r["cpu_s"], nbytes / ntok,
        ])  # fmt: skip
    header = ["mode", "best MB/s (wall)", "vs SP same mode (wall)", "MB per CPU-s",
              "vs SP same mode (CPU time)", "bytes/token"]  # fmt: skip
    print()
    print(timing.markdown_table(header, rows))
    print()
    print(f"Viterbi ids equal to SentencePiece on every line: host C DP {bad[jl_vit] == 0}, "
          f"JAX DP {bad[jx_vit] == 0} ({bad} line mismatches)")  # fmt: skip
    print(f"every sample decodes back to its line (jaxlab both paths, SentencePiece): {round_trip}")
    for label, v, s in (("host C DP", jl_vit, jl_smp), ("JAX DP", jx_vit, jx_smp),
                        ("SentencePiece", sp_vit, sp_smp)):  # fmt: skip
        w = results[s]["best_s"] / results[v]["best_s"]
        c = results[s]["cpu_s"] / results[v]["cpu_s"]
        print(f"sampling / Viterbi time, {label}: {w:.2f} (wall), {c:.2f} (CPU)")
    return 0 if not any(bad.values()) and round_trip else 1


if __name__ == "__main__":
    raise SystemExit(main())
