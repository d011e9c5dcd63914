"""DEER convergence: sweeps to converge vs T, hidden size, spectral scale and mode (tanh-RNN, GRU).

  jaxlab run configs/deer_convergence.py:quick --workdir runs/deer_convergence-quick  # ~40 s
  jaxlab run configs/deer_convergence.py --workdir runs/deer_convergence              # minutes

Quick: the spec's table rows (n, T) = (4, 2000), (8, 2000), (16, 1000) at scales 0.5/1.0/1.5,
float64, modes newton/quasi/picard/su, sequential linear solves (iteration counts do not depend
on how the linear recurrence is solved); a float32 GRU (n = 4, T = 1000). Full: n in {4, 8, 16}
x T in {1000, 2000}, plus the damped modes and the associative scan.

Expect (spec/deer.md): Newton 5-16 sweeps, quasi/picard tens to ~120, Su's constant-A scheme
hundreds up to T (= T for spectral radius >= 1), every mode exact (error <= 1e-10 float64)
after at most T sweeps; gradients equal BPTT. The problems of one shape (its scales) form a
vmapped population split over ``num_devices`` data-parallel devices (full: all devices).
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, seed=0)
    q = opts.quick
    c = ml_collections.ConfigDict()
    c.experiment = "deer_convergence"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds the random RNN weights and inputs
    c.tanh = dict(
        shapes=((4, 2000), (8, 2000), (16, 1000))  # (hidden n, length T) pairs
        if q
        else ((4, 1000), (4, 2000), (8, 1000), (8, 2000), (16, 1000), (16, 2000)),
        scales=(0.5, 1.0, 1.5),  # spectral scale of W (W ~ N(0, scale^2 / n))
        modes=("newton", "quasi", "picard", "su")  # solver modes compared
        if q
        else ("newton", "quasi", "picard", "su", "damped", "quasi_damped"),
        tol=1e-10,  # atol of the step test (rtol 0), float64 as in the spec's table
        sigmasq=1e4,  # damped modes: pseudo-observation variance
    )
    c.gru = dict(
        hidden=4,  # GRU state size
        length=1000,  # T
        scales=(0.5, 1.0, 2.0),  # scale of the recurrent weights
        modes=("newton", "quasi", "picard", "su"),  # Su's GRU A = (I + U_h / 2) / 2
    )
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all); each shape's scales split
    c.scan_method = "sequential" if q else "associative"  # linear solver inside each sweep
    c.trace_iters = 200  # sweeps recorded for the |step| vs sweep plot (n=4, T=2000, scale 1)
    c.first_k = (1, 5, 50)  # k for the "first k states exact after k sweeps" check
    c.tolerance = dict(
        newton_max_iters=20,  # spec check 4: Newton <= 20 sweeps at scale <= 1.0
        exact_error=1e-9,  # float64 max abs error vs lax.scan: 10 x solver tol (STYLE 2.9)
        first_k_error=1e-12,  # first k states after k sweeps (float64)
        grad_rel=1e-8,  # implicit gradient vs BPTT, float64 relative
        gru_error=1e-5,  # float32 GRU, max abs error (Newton, default tolerances)
    )
    return c
