# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # jaxlab quickstart: the tiny byte-level LM
#
# Every experiment is a config file plus a runner. Here we load `configs/lm_baseline.py`,
# run it into a work directory, and look at what it wrote: `config.json`, `metrics.jsonl`,
# `results.json` and PNG plots. The same run from a shell:
#
#     jaxlab run configs/lm_baseline.py:quick --workdir runs/lm_baseline
#
# Run this notebook as a script with `JAXLAB_QUICK=1 python notebooks/00_quickstart.py`, or open
# it in Jupyter via jupytext.

# %%
import json
import os
import pathlib

from jaxlab import data, launch
from jaxlab.metrics import read_metrics

QUICK = os.environ.get("JAXLAB_QUICK") == "1"
OUT = pathlib.Path(os.environ.get("JAXLAB_NOTEBOOK_OUT", "runs/notebooks"))

# %% [markdown]
# ## The data
# The default corpus is the standard library source of this Python, split by file.

# %%
corpus = data.load_corpus()
print(f"train: {corpus.train.size:,} bytes in {len(corpus.train_files)} files")
print(f"held out: {corpus.heldout.size:,} bytes in {len(corpus.heldout_files)} files")
entropy = data.unigram_entropy_bits(corpus.heldout)
print(f"unigram byte entropy of the held-out split: {entropy:.3f} bits")

# %% [markdown]
# ## Configure and run
# Overrides work like `--config.train.num_steps=...` on the command line.

# %%
config = launch.load_config("lm_baseline:quick")
if QUICK:  # keep the notebook test fast: fewer steps than the quick experiment
    launch.apply_overrides(
        config, ["--config.train.num_steps=120", "--config.train.checkpoint_every=0"]
    )
workdir = OUT / ("quickstart-quick" if QUICK else "quickstart")
results = launch.run_experiment(config, workdir)

# %%
for name, value in results["figures"].items():
    print(f"{name:28s} {value}")
for c in results["claims"]:
    print(f"{c['name']}: expected {c['expected']}, measured {c['measured']} -> agree={c['agree']}")

# %% [markdown]
# ## The loss curve, from metrics.jsonl

# %%
history = read_metrics(workdir)
print(json.dumps(history[-1], indent=1))
print("plots:", [str(workdir / p) for p in results["plots"]])
