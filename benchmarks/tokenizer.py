"""jaxlab unigram tokenizer vs SentencePiece: MB/s side by side, same text, same vocabulary.

  python benchmarks/tokenizer.py            # full: 8k SP-ws model on stdlib text, 1 MiB test
  python benchmarks/tokenizer.py --quick    # < 1 min: 128 KiB test slice (model cached)
  python benchmarks/tokenizer.py --text manpages   # multilingual: translated man pages
  python benchmarks/tokenizer.py --cpus 1   # pin the whole process (both libraries) to 1 CPU

Text: held-out Python standard-library source (``jaxlab.tokenizer.corpus.stdlib_split``), or
with ``--text manpages`` the translated man pages of ``/usr/share/man`` (20-odd languages, ~1,700
distinct characters; ``corpus.manpage_split``; character coverage 0.9995). ``--cpus N`` pins the
process to N CPUs, so both libraries run at the same thread count.
Vocabulary: a SentencePiece unigram 8k model trained with the spec's SP-ws arguments (identity
normaliser, byte fallback, no whitespace removal), cached under $JAXLAB_CACHE or /tmp.
Modes: Viterbi (SentencePiece ``encode``, one thread, list input) and exact sampling
(SentencePiece ``enable_sampling=True, nbest_size=-1, alpha=0.1``; jaxlab FFBS alpha = 0.1).
Correctness is checked in the same run: Viterbi ids equal on every line, and every sample
decodes back to its line. jaxlab runs twice: with its compiled host kernels (the default when the
extension was built at install time) and with the pure NumPy host path; the device DP is the same
JAX code. The active host path is printed first (as ``jaxlab tokenizer --version`` does).
BytePiece is timed only if it is importable.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import jax

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import timing  # noqa: E402

from jaxlab.tokenizer import spm  # noqa: E402
from jaxlab.tokenizer.corpus import manpage_split, stdlib_split  # noqa: E402
from jaxlab.tokenizer.encoder import Tokenizer  # noqa: E402

TEXTS = {"stdlib": stdlib_split, "manpages": manpage_split}


def cached_model(vocab_size: int = 8000, text: str = "stdlib") -> pathlib.Path:
    """Trains (once) the SP-ws unigram model on the training part of ``text``."""
    cache = pathlib.Path(os.environ.get("JAXLAB_CACHE", tempfile.gettempdir())) / "jaxlab_tok"
    cache.mkdir(parents=True, exist_ok=True)
    name = f"sp_ws_{vocab_size}" if text == "stdlib" else f"sp_ws_{text}_{vocab_size}"
    path = cache / f"{name}.model"
    if not path.exists():
        train, _ = TEXTS[text]()
        (cache / "train.txt").write_text(train)
        print(f"training SentencePiece {vocab_size} on {text} (once; ~1 min) ...", flush=True)
        extra = {} if text == "stdlib" else {"character_coverage": 0.9995}
        spm.train_sentencepiece(cache / "train.txt", cache / name, vocab_size, **extra)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--text", choices=sorted(TEXTS), default="stdlib")
    parser.add_argument("--cpus", type=int, default=None, help="pin the process to N CPUs")
    args = parser.parse_args(argv)
    if args.cpus:  # before the first JAX computation starts its thread pools
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cpus]))
        print(f"pinned to CPUs {sorted(os.sched_getaffinity(0))}")
    import sentencepiece

    timing.print_machine()
    from jaxlab.tokenizer.cli import version_line

    print(version_line())
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    model_path = cached_model(text=args.text)
    _, test = TEXTS[args.text]()
    if args.quick:
        test = test[: test.rfind("\n", 0, 128 * 1024) + 1]
    lines = test.split("\n")[:-1]
    nbytes = len(test.encode("utf-8"))
    repeats = args.repeats or (3 if args.quick else 5)
    print(f"test text: {nbytes} bytes, {len(lines)} lines; repeats={repeats}")

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
    model = spm.from_sentencepiece(model_path)
    tok = Tokenizer(model)  # compiled host kernels when the extension is built (the default)
    print(f"jaxlab host path of the default rows: {tok.host_path}")
    numpy_tok = Tokenizer(model, use_native=False)
    key = jax.random.key(0)
    runs = {
        "SentencePiece Viterbi (1 thread)": lambda: sp.encode(lines, num_threads=1),
        "SentencePiece Viterbi (2 threads)": lambda: sp.encode(lines, num_threads=2),
        "jaxlab Viterbi": lambda: tok.encode(lines),
        "jaxlab Viterbi, NumPy host path": lambda: numpy_tok.encode(lines),
        "SentencePiece FFBS alpha=0.1 (1 thread)": lambda: sp.encode(
            lines, enable_sampling=True, nbest_size=-1, alpha=0.1, num_threads=1
        ),
        "jaxlab FFBS alpha=0.1": lambda: tok.encode(lines, alpha=0.1, key=key),
        "jaxlab eager alpha=0.1": lambda: tok.encode(lines, alpha=0.1, key=key, method="eager"),
        "jaxlab FFBS alpha=0.1, NumPy host path": lambda: numpy_tok.encode(
            lines, alpha=0.1, key=key
        ),
    }
    try:
        import bytepiece  # noqa: F401

        print("bytepiece is importable but no BytePiece model is wired in; skipped")
    except ImportError:
        print("bytepiece not installed (needs Cython + a bytes-mode pyahocorasick build); skipped")
    results = {}
    for name, fn in runs.items():
        # Host outputs (lists of ids, from both libraries): jaxlab's encode already waits for
        # its device results, so no block_until_ready walk over ~500k Python ints.
        r = timing.time_fn(fn, repeats=repeats, block=False)
        cpu = []
        for _ in range(repeats):  # CPU seconds of this process (all threads): load-robust
            t0 = time.process_time()
            fn()
            cpu.append(time.process_time() - t0)
        r["cpu_s"] = min(cpu)
        results[name] = r
        print(
            f"  {name}: best {nbytes / r['best_s'] / 1e6:.3f} MB/s, compile {r['compile_s']:.1f} s"
        )

    ref = results["SentencePiece Viterbi (1 thread)"]["out"]
    bad = 0
    for name in ("jaxlab Viterbi", "jaxlab Viterbi, NumPy host path"):
        bad += sum(a != b for a, b in zip(results[name]["out"], ref, strict=True))
    same_samples = (
        results["jaxlab FFBS alpha=0.1"]["out"]
        == results["jaxlab FFBS alpha=0.1, NumPy host path"]["out"]
    )
    sampled = results["jaxlab FFBS alpha=0.1"]["out"]
    sp_sampled = results["SentencePiece FFBS alpha=0.1 (1 thread)"]["out"]
    # Lines with characters outside the vocabulary and no byte fallback cannot round-trip; the
    # SP-ws models have byte fallback, so every line must.
    round_trip = tok.decode(sampled) == lines and sp.decode(sp_sampled) == lines
    sp_vit = results["SentencePiece Viterbi (1 thread)"]["best_s"]
    sp_smp = results["SentencePiece FFBS alpha=0.1 (1 thread)"]["best_s"]
    cpu_vit = results["SentencePiece Viterbi (1 thread)"]["cpu_s"]
    cpu_smp = results["SentencePiece FFBS alpha=0.1 (1 thread)"]["cpu_s"]
    rows = []
    for name, r in results.items():
        vit = "Viterbi" in name
        base, base_cpu = (sp_vit, cpu_vit) if vit else (sp_smp, cpu_smp)
        ntok = sum(map(len, r["out"]))
        rows.append(
            [
                name,
                nbytes / r["best_s"] / 1e6,
                nbytes / r["median_s"] / 1e6,
                base / r["best_s"],
                nbytes / r["cpu_s"] / 1e6,
                base_cpu / r["cpu_s"],
                nbytes / ntok,
            ]
        )
    header = [
        "mode",
        "best MB/s (wall)",
        "median MB/s (wall)",
        "vs SP same mode (wall, best)",
        "MB per CPU-s",
        "vs SP same mode (CPU time)",
        "bytes/token",
    ]
    print()
    print(timing.markdown_table(header, rows))
    jl_vit = results["jaxlab Viterbi"]["best_s"]
    print()
    print(
        f"Viterbi ids equal to SentencePiece on every line, both host paths: {bad == 0}"
        f" ({bad} line mismatches in total)"
    )
    print(f"samples identical on both host paths (same key): {same_samples}")
    print(f"every sample decodes back to its line (jaxlab and SentencePiece): {round_trip}")
    jl_smp = results["jaxlab FFBS alpha=0.1"]["best_s"]
    print(f"jaxlab sampling / jaxlab Viterbi time: {jl_smp / jl_vit:.2f}")
    print(f"SentencePiece sampling / Viterbi time: {sp_smp / sp_vit:.2f}")
    return 0 if bad == 0 and round_trip and same_samples else 1


if __name__ == "__main__":
    raise SystemExit(main())
