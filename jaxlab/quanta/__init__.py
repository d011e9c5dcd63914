"""The quantization model of neural scaling: theory, vmapped simulations, multitask sparse parity.

Modules, by concept:

* ``theory``: Zipf-used quanta, the exact-tail losses L(N), L(D), L(S), the Poisson form,
  :func:`fit_power_law` with bootstrap intervals.
* ``grid``: :func:`simulate_grid`, a whole (γ, N, D, S) grid vmapped into one program.
* ``sweep``: per-γ derived laws and fitted exponents α_N, α_D, α_S of a simulated γ sweep.
* ``sparse_parity``: the multitask sparse-parity task, its data on device, exact test sets,
  emergence metrics.
* ``parity_mlp``: one-hidden-layer MLPs for it and their width-batched AdamW training.
* ``parity_sweep``: a width sweep of those MLPs (packed groups trained in lockstep, seeds over
  devices) and its quanta-model metrics (finite-K slope, abruptness of emergence).

Example::

    from jaxlab import quanta
    loss = quanta.loss_of_parameters(1e6, gamma=0.5, a=0.0, b=1.0, quanta_per_param=1e-3)

References: Michaud et al. (2023), arXiv:2303.13506; Su, kexue.fm/archives/9607.
"""

from jaxlab.quanta import grid, parity_mlp, parity_sweep, sparse_parity, sweep, theory
from jaxlab.quanta.grid import (
    QuantaGrid,
    simulate_grid,
    simulate_grid_sharded,
)
from jaxlab.quanta.theory import (
    NATS_PER_BIT,
    PowerLawFit,
    data_for_quanta,
    fit_power_law,
    learned_from_data,
    loss_of_data,
    loss_of_data_asymptotic,
    loss_of_data_poisson,
    loss_of_parameters,
    loss_of_quanta,
    loss_of_steps,
    poisson_losses_for_capacities,
    poisson_truncation_bound,
    quanta_of_parameters,
    tail_mass,
    tail_mass_asymptotic,
    tail_mass_finite,
    to_bits,
    zipf_probs,
)

__all__ = [
    "theory",
    "grid",
    "sweep",
    "sparse_parity",
    "parity_mlp",
    "parity_sweep",
    "NATS_PER_BIT",
    "to_bits",
    "zipf_probs",
    "tail_mass",
    "tail_mass_asymptotic",
    "tail_mass_finite",
    "loss_of_quanta",
    "quanta_of_parameters",
    "loss_of_parameters",
    "learned_from_data",
    "data_for_quanta",
    "loss_of_data",
    "loss_of_data_asymptotic",
    "loss_of_steps",
    "poisson_truncation_bound",
    "loss_of_data_poisson",
    "poisson_losses_for_capacities",
    "PowerLawFit",
    "fit_power_law",
    "QuantaGrid",
    "simulate_grid",
    "simulate_grid_sharded",
]
