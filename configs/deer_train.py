"""DEER training: a GRU trained with DEER forward + implicit gradients vs lax.scan + BPTT.

  jaxlab run configs/deer_train.py:quick --workdir runs/deer_train-quick  # ~30 s, 2 CPUs
  jaxlab run configs/deer_train.py --workdir runs/deer_train              # GPU: minutes
  jaxlab run configs/deer_train.py:gpu --workdir runs/deer_train-gpu      # 1 H100, ~40 s

Task: running mean. Inputs x_t ~ N(0, 1), target_t = mean(x_1..x_t), T >= 1000; a GRU
(ParallelRNN) plus a linear readout, per-step squared error, Adam. Both models start from the
same weights and see the same batches; only the evaluation (DEER Newton vs lax.scan) and the
gradient (implicit adjoint scan vs BPTT) differ.

Data parallel: each training batch is split over ``num_devices`` devices (full: all; the
batch must divide evenly, else the run fails at the start); parameters and Adam state are
replicated.

Expect: the two float32 loss curves agree to relative 1e-3 at every step (DEER's default
tolerances), and the loss falls.

GPU (:gpu, part of ``jaxlab reproduce --gpu``; budget share 40 s of the ~8 min tier, see
``jaxlab.gpu_tier.BUDGET_S``): T = 10 000 (the regime where DEER should beat the sequential
scan), batch 16, hidden 8, 60 steps, DEER in ``quasi`` mode (diagonal Jacobian: same fixed point
and tolerances as Newton). Quasi, not Newton: on the H200 run of issue 18 dense Newton at hidden
16, T = 1e4 took 10.3 s per evaluation against 36 ms for quasi. Estimate the budget rests on
(not measured): quasi forward + implicit backward ~0.1 s per step, lax.scan + BPTT over 1e4
steps ~0.3 s per step (~10 us per scan step, forward and backward), so 60 steps ~25 s plus
~15 s of compilation. Replace with the measured step times (figures ``step_s_*``).
"""

import ml_collections

from jaxlab import config_args

CHOICES = {
    "model.cell": ("tanh", "gru", "diag_gru", "lstm"),
    "model.mode": ("newton", "quasi", "picard", "damped", "quasi_damped"),
    "model.scan_method": ("associative", "sequential"),
}


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, g = opts.quick, opts.gpu
    c = ml_collections.ConfigDict()
    c.experiment = "deer_train"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds the init and the data stream
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all); data.batch split over them
    c.model = dict(  # jaxlab.deer.layer.ParallelRNNConfig (in_features is 1)
        cell="gru",  # jaxlab.deer.cells name
        hidden=8,  # D
        mode="quasi" if g else "newton",  # DEER mode of the candidate model
        scan_method="associative",  # linear solves inside DEER sweeps
    )
    c.data = dict(
        length=1000 if q else 10_000 if g else 4000,  # T (>= 1000)
        batch=8 if q else 16,  # B
    )
    c.train = dict(
        steps=25 if q else 60 if g else 300,  # optimiser steps
        learning_rate=1e-2,  # Adam step size
        log_every=5 if q else 10 if g else 25,  # progress/metrics cadence (every step is logged)
    )
    c.tolerance = dict(
        loss_rel=1e-3,  # max_t |loss_deer - loss_bptt| / loss_bptt over the curve
    )
    c.known_disagreements = ()  # (claim name, reason) pairs this config is known to fail
    return c
