"""Solver objects for :func:`jaxlab.deer.deer`: one frozen dataclass per method (STYLE 2.4).

Options that apply to one method live on its object (diffrax's solver objects are the model):
``deer(f, y0, xs, p, method=Damped(sigmasq=1e2))`` instead of keyword arguments of ``deer``.
Options common to every method (tolerances, ``max_iter``, ``clip``, ``verify``) stay keywords of
:func:`jaxlab.deer.deer`. :func:`method_from_name` maps the names in ``METHODS`` (the ``mode``
strings of configs and CLI flags) to objects; nothing else takes strings.

References: Lim et al. (2024), arXiv:2309.12252 (Newton/DEER); Gonzalez et al. (2024),
arXiv:2407.19115 (quasi-DEER, ELK); Danieli et al. (2025), arXiv:2510.21450 (block-diagonal
cells); Su Jianlin (2023), https://kexue.fm/archives/9783 (constant A).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxlab.deer.scan import METHODS as SCAN_METHODS

METHODS = (
    "newton",
    "quasi",
    "block",
    "picard",
    "constant",
    "damped",
    "quasi_damped",
    "sequential",
)
ALIASES = {"su": "constant", "deer": "newton"}


def _check_scan(scan: str) -> None:
    if scan not in SCAN_METHODS:
        raise ValueError(f"scan must be one of {SCAN_METHODS}, got {scan!r}")


@dataclasses.dataclass(frozen=True)
class Newton:
    """DEER: J_t = df/dy, the full Jacobian; quadratic convergence near the solution.

    Attributes:
      scan: ``"associative"`` (parallel) or ``"sequential"`` linear solves (same result; the
        sequential one is faster on CPU).
    """

    scan: str = "associative"

    def __post_init__(self):
        _check_scan(self.scan)


@dataclasses.dataclass(frozen=True)
class Quasi:
    """quasi-DEER: J_t = diag(df/dy); an O(T D) diagonal scan, linear convergence."""

    scan: str = "associative"

    def __post_init__(self):
        _check_scan(self.scan)


@dataclasses.dataclass(frozen=True)
class Block:
    """J_t = the k x k diagonal blocks of df/dy (exact Newton for block-diagonal cells).

    Attributes:
      size: Block size k; divides the state size D (1 = the diagonal).
      scan: As in :class:`Newton`.
    """

    size: int
    scan: str = "associative"

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"Block size must be a positive int, got {self.size!r}")
        _check_scan(self.scan)


@dataclasses.dataclass(frozen=True)
class Picard:
    """J_t = 0: the Jacobi sweep y^(k+1)_t = f(y^(k)_{t-1}, x_t), no scan."""


@dataclasses.dataclass(frozen=True, eq=False)
class Constant:
    """Su's constant-A sweep: J_t = A for every t (not Newton; diverges per sweep if rho(A) >= 1,
    rescued by the <= T property and clipping).

    Attributes:
      A: ``[D, D]`` or its diagonal ``[D]`` (an array; may be traced).
      scan: As in :class:`Newton`.
    """

    A: Any
    scan: str = "associative"

    def __post_init__(self):
        if self.A is None or getattr(self.A, "ndim", 0) not in (1, 2):
            raise ValueError("Constant needs the matrix A, shape [D, D] or its diagonal [D]")
        _check_scan(self.scan)


@dataclasses.dataclass(frozen=True, eq=False)
class Damped:
    """ELK: Levenberg-Marquardt steps, exact via a parallel Kalman smoother.

    Each sweep minimises sum_t |delta_t - J_t delta_{t-1} - rho_t|^2 + |delta|^2 / sigmasq over
    the correction delta = y^(k+1) - y^(k) (rho_t = f(y^(k)_{t-1}, x_t) - y^(k)_t, the residual).
    Solving for the correction rather than the state keeps every quantity of the float32 smoother
    as small as the residual. With ``adaptive`` (the default) a sweep whose candidate raises the
    residual sum of squares is rejected and sigma^2 divided by ``factor``; an accepted sweep
    multiplies it by ``factor``, within [``sigmasq_min``, the dtype's cap]. The cap (1e4 in
    float32, 1e12 in float64) bounds the filter covariances, which grow like sigma^2 |J|^2 and
    lose every digit of float32 at sigma^2 = 1e8 on stiff cells. When a damped candidate is
    rejected below the cap, the undamped step is tried and taken if it extends the exact prefix
    (the leading steps whose residual passes the tolerance): every sweep then lowers the
    residual or makes one more step exact, so LM cannot stall at a non-zero local minimum of
    sum |rho|^2 (it did on float64 tanh RNNs with recurrent weights x3-5).

    Attributes:
      sigmasq: Initial pseudo-observation variance 1/lambda (large = Newton); may be traced.
      quasi: Diagonal Jacobians (a scalar smoother per dimension; quasi-ELK).
      filter_only: Iterate the filter means (the reference ELK code) instead of the exact LM
        step (the smoother means).
      adaptive: Adapt sigma^2 as above; False keeps it fixed (every candidate is accepted).
      factor: Multiplier of sigma^2 per accepted / rejected sweep (> 1).
      sigmasq_min: Lower bound of the adapted sigma^2 (> 0).
      sigmasq_max: Upper bound; None = the dtype's cap.
    """

    sigmasq: Any = 1e8
    quasi: bool = False
    filter_only: bool = False
    adaptive: bool = True
    factor: float = 10.0
    sigmasq_min: float = 1e-6
    sigmasq_max: float | None = None

    def __post_init__(self):
        if not self.factor > 1:
            raise ValueError(f"Damped factor must be > 1, got {self.factor!r}")
        if not self.sigmasq_min > 0:
            raise ValueError(f"Damped sigmasq_min must be > 0, got {self.sigmasq_min!r}")


@dataclasses.dataclass(frozen=True)
class Sequential:
    """The ``lax.scan`` reference (:func:`jaxlab.deer.sequential`); no sweeps."""


Method = Newton | Quasi | Block | Picard | Constant | Damped | Sequential
_CLASSES = (Newton, Quasi, Block, Picard, Constant, Damped, Sequential)


def check_method(method: Any) -> None:
    """Raises ValueError unless ``method`` is one of the solver objects."""
    if not isinstance(method, _CLASSES):
        names = ", ".join(c.__name__ for c in _CLASSES)
        hint = " (for a name use deer.method_from_name)" if isinstance(method, str) else ""
        raise ValueError(f"method must be a solver object ({names}), got {method!r}{hint}")


def method_from_name(
    name: str,
    *,
    A: Any = None,
    block_size: int | None = None,
    sigmasq: Any = None,
    scan: str | None = None,
    filter_only: bool | None = None,
    adaptive: bool | None = None,
) -> Method:
    """The solver object for a config-layer name (``METHODS`` or an alias ``su``, ``deer``).

    Options that the named method does not have are ignored, so a config may set them for a
    whole list of modes; a method missing a required option (``constant`` without ``A``,
    ``block`` without ``block_size``) raises.

    Args:
      name: A ``METHODS`` entry or alias.
      A: ``constant``: its matrix.
      block_size: ``block``: k.
      sigmasq: ``damped``/``quasi_damped``: initial sigma^2.
      scan: Linear solver of the scanning methods (``"associative"``/``"sequential"``).
      filter_only, adaptive: ``damped``/``quasi_damped`` options.

    Returns:
      A :data:`Method`.

    Examples:
      >>> method_from_name("quasi_damped", sigmasq=1e2, scan="sequential")
      Damped(sigmasq=100.0, quasi=True, filter_only=False, adaptive=True, factor=10.0, \
sigmasq_min=1e-06, sigmasq_max=None)
    """
    name = ALIASES.get(name, name)
    if name not in METHODS:
        raise ValueError(f"mode must be one of {METHODS + tuple(ALIASES)}, got {name!r}")
    scan_opt = {} if scan is None else dict(scan=scan)
    if name == "newton":
        return Newton(**scan_opt)
    if name == "quasi":
        return Quasi(**scan_opt)
    if name == "block":
        if block_size is None:
            raise ValueError('mode "block" needs block_size')
        return Block(block_size, **scan_opt)
    if name == "picard":
        return Picard()
    if name == "constant":
        return Constant(A, **scan_opt)
    if name == "sequential":
        return Sequential()
    opts = {
        k: v
        for k, v in dict(sigmasq=sigmasq, filter_only=filter_only, adaptive=adaptive).items()
        if v is not None
    }
    return Damped(quasi=name == "quasi_damped", **opts)
