"""``jaxlab abc N [N ...]``: print the exact minimiser of a + b + c with N = ab + c for each N."""

import decimal

from jaxlab.ab_plus_c import exact
from jaxlab.config_args import ArgumentParser as _Parser
from jaxlab.config_args import UsageError, shorten

# N is printed in decimal, and Python converts at most 4300 digits (sys.get_int_max_str_digits()).
MAX_N_DIGITS = 4300


def parse_n(text: str) -> int:
    """Parses a non-negative integer: ``130``, ``1_000_000`` or an integral ``1e40`` (exactly).

    N has at most :data:`MAX_N_DIGITS` decimal digits; a longer one is refused before it is built
    (``1e1000000000`` fails at once).

    Raises:
      UsageError: for anything that is not a non-negative integer of at most MAX_N_DIGITS digits.
    """
    bad = f"N: expected a non-negative integer, got {shorten(text)}"
    plain = text.strip().lstrip("+").replace("_", "")
    if plain.isdigit() and len(plain) > MAX_N_DIGITS:
        raise UsageError(f"N: {len(plain)} digits, at most {MAX_N_DIGITS}")
    try:
        value = int(text)
    except ValueError:
        try:
            dec = decimal.Decimal(text.replace("_", ""))
        except decimal.InvalidOperation:
            raise UsageError(bad) from None
        if not dec.is_finite():
            raise UsageError(bad) from None
        if dec.adjusted() >= MAX_N_DIGITS:
            raise UsageError(f"N: {shorten(text)} has more than {MAX_N_DIGITS} digits") from None
        if dec != dec.to_integral_value():
            raise UsageError(bad) from None
        with decimal.localcontext() as ctx:
            ctx.prec = MAX_N_DIGITS + 30
            value = int(dec)
    if value < 0:
        raise UsageError(bad)
    return value


def cli(argv: list[str]) -> int:
    """Runs ``jaxlab abc``; one line ``N=... a=... b=... c=... a+b+c=...`` per N.

    Args:
      argv: The arguments after ``abc``.

    Returns:
      0 on success.

    Raises:
      UsageError: for a missing, negative or non-integer N.
    """
    parser = _Parser(
        prog="jaxlab abc",
        description="Exact minimiser of a + b + c over non-negative integers with N = ab + c "
        "(Algorithm C, O(N^{1/4}) integer steps, any size of N).",
    )
    parser.add_argument("N", nargs="+", help="non-negative integers, e.g. 130 or 1e40")
    parser.add_argument(
        "--stats", action="store_true", help="also print the iteration count and ceil(2 sqrt N)"
    )
    args = parser.parse_args(argv)
    for n in [parse_n(t) for t in args.N]:
        r = exact.min_abc(n, return_stats=True)
        line = f"N={n} a={r.a} b={r.b} c={r.c} a+b+c={r.s}"
        if args.stats:
            line += f" iterations={r.iterations} ceil(2sqrtN)={exact.lower_bound(n)}"
        print(line)
    return 0
