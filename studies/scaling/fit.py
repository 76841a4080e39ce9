"""Power-law fits of loss against model size and data size, with bootstrap confidence intervals.

Three forms (N: parameter count, D: training frames):
  L(N)    = A N^-alpha + L_inf
  L(D)    = B D^-beta + L_inf
  L(N, D) = E + A N^-alpha + B D^-beta
All are fitted by bounded least squares on log residuals (losses span decades, so relative errors are
what matters) from several starting points; the best start wins. Each size axis is scaled by its
geometric mean inside the optimiser so the amplitudes stay O(1); the reported A and B are in the
original units. Intervals come from a pairs bootstrap (points resampled with replacement, refitted) when
there are at least two distinct points per parameter, else from a residual bootstrap (log residuals
resampled onto the fitted curve); a fit with no more points than parameters is exact and has none.
With `sigma` (each point's uncertainty of its log loss, e.g. the seed spread of its mean) the residuals are
weighted by 1/sigma.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares

MAX_EXPONENT = 5.0


@dataclasses.dataclass
class PowerLawFit:
    """One fitted form: parameters, bootstrap intervals and the bootstrap parameter samples."""

    form: str  # "L(N)", "L(D)" or "L(N,D)"
    params: dict[str, float]  # original units: A, alpha, L_inf (or E, A, alpha, B, beta)
    ci: (
        dict[str, tuple[float, float]] | None
    )  # None when the fit is exact (no more points than parameters)
    n_points: int
    rmse_log: float  # root-mean-square of log(pred / observed)
    confidence: float
    bootstrap: str  # "pairs", "residual" (fewer than 2 points per parameter) or "none"
    n_boot: int  # bootstrap refits that succeeded
    samples: np.ndarray = dataclasses.field(
        repr=False
    )  # (n_boot, n_params), in the order of `params`

    def predict(self, *x: np.ndarray) -> np.ndarray:
        """The fitted curve at sizes `x` (one array for L(N)/L(D), two for L(N,D))."""
        return _EVALUATORS[self.form](np.array(list(self.params.values())), *x)

    def curves(self, *x: np.ndarray) -> np.ndarray:
        """(n_boot, len(x)): every bootstrap sample's curve at `x`."""
        return np.stack([_EVALUATORS[self.form](s, *x) for s in self.samples]).reshape(
            self.samples.shape[0], -1
        )

    def band(self, *x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Pointwise bootstrap interval of the curve at `x`, or None without bootstrap samples."""
        if self.samples.shape[0] == 0:
            return None
        curves = self.curves(*x)
        tail = 100 * (1 - self.confidence) / 2
        return np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0)

    def to_json(self) -> dict:
        return {
            "form": self.form,
            "params": self.params,
            "ci": None if self.ci is None else {k: list(v) for k, v in self.ci.items()},
            "n_points": self.n_points,
            "rmse_log": self.rmse_log,
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
            "n_boot": self.n_boot,
        }


def _single(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    amp, exponent, floor = params
    return amp * np.asarray(x, float) ** -exponent + floor


def _joint(params: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    floor, a, alpha, b, beta = params
    return floor + a * np.asarray(n, float) ** -alpha + b * np.asarray(d, float) ** -beta


_EVALUATORS: dict[str, Callable[..., np.ndarray]] = {
    "L(N)": _single,
    "L(D)": _single,
    "L(N,D)": _joint,
}


def _check(y: np.ndarray, *xs: np.ndarray) -> None:
    if y.ndim != 1 or any(x.shape != y.shape for x in xs):
        raise ValueError(
            f"sizes and losses must be 1-D arrays of one length, got {[x.shape for x in xs]} and {y.shape}"
        )
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError(f"losses must be finite and positive, got {y}")
    for x in xs:
        if not np.all(x > 0):
            raise ValueError(f"sizes must be positive, got {x}")


def _best_of_starts(
    residuals: Callable[[np.ndarray], np.ndarray],
    jacobian: Callable[[np.ndarray], np.ndarray],
    starts: Sequence[np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
) -> np.ndarray:
    best, best_cost = None, np.inf
    for start in starts:
        result = least_squares(
            residuals,
            np.clip(start, lower, upper),
            jac=jacobian,
            bounds=(lower, upper),
            method="trf",
            max_nfev=500,
        )
        if np.isfinite(result.cost) and result.cost < best_cost:
            best, best_cost = result.x, result.cost
    if best is None:
        raise RuntimeError("no start converged")
    return best


class _SingleProblem:
    """y = a (x/x_ref)^-p + floor, optimised over (log a, p, floor)."""

    n_params = 3

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x_ref = float(np.exp(np.mean(np.log(x))))
        self.ymin = float(y.min())

    def solve(
        self,
        x: np.ndarray,
        y: np.ndarray,
        starts: Sequence[np.ndarray] | None = None,
        w: np.ndarray | None = None,
    ) -> np.ndarray:
        u, logy = x / self.x_ref, np.log(y)
        w = np.ones_like(y) if w is None else w

        def residuals(t: np.ndarray) -> np.ndarray:
            return w * (np.log(np.exp(t[0]) * u ** -t[1] + t[2]) - logy)

        def jacobian(t: np.ndarray) -> np.ndarray:
            term = np.exp(t[0]) * u ** -t[1]
            pred = term + t[2]
            return w[:, None] * np.stack(
                [term / pred, -term * np.log(u) / pred, 1.0 / pred], axis=1
            )

        lower = np.array([-50.0, 0.0, 0.0])
        upper = np.array([50.0, MAX_EXPONENT, self.ymin])
        if starts is None:
            starts = [
                np.array([np.log(max(np.median(y) - f * self.ymin, 1e-12)), p, f * self.ymin])
                for p, f in itertools.product((0.1, 0.3, 0.6, 1.0, 2.0), (0.0, 0.5, 0.9))
            ]
        return _best_of_starts(residuals, jacobian, starts, lower, upper)

    def to_params(self, t: np.ndarray) -> np.ndarray:
        """Internal (log a, p, floor) -> original-unit (A, p, floor)."""
        return np.array([np.exp(t[0]) * self.x_ref ** t[1], t[1], t[2]])


class _JointProblem:
    """y = e + a (n/n_ref)^-alpha + b (d/d_ref)^-beta, optimised over (log a, alpha, log b, beta, e)."""

    n_params = 5

    def __init__(self, n: np.ndarray, d: np.ndarray, y: np.ndarray):
        self.n_ref = float(np.exp(np.mean(np.log(n))))
        self.d_ref = float(np.exp(np.mean(np.log(d))))
        self.ymin = float(y.min())

    def solve(
        self,
        n: np.ndarray,
        d: np.ndarray,
        y: np.ndarray,
        starts: Sequence[np.ndarray] | None = None,
        w: np.ndarray | None = None,
    ) -> np.ndarray:
        un, ud, logy = n / self.n_ref, d / self.d_ref, np.log(y)
        w = np.ones_like(y) if w is None else w

        def residuals(t: np.ndarray) -> np.ndarray:
            return w * (
                np.log(np.exp(t[0]) * un ** -t[1] + np.exp(t[2]) * ud ** -t[3] + t[4]) - logy
            )

        def jacobian(t: np.ndarray) -> np.ndarray:
            ta, tb = np.exp(t[0]) * un ** -t[1], np.exp(t[2]) * ud ** -t[3]
            pred = ta + tb + t[4]
            return w[:, None] * np.stack(
                [
                    ta / pred,
                    -ta * np.log(un) / pred,
                    tb / pred,
                    -tb * np.log(ud) / pred,
                    1.0 / pred,
                ],
                axis=1,
            )

        lower = np.array([-50.0, 0.0, -50.0, 0.0, 0.0])
        upper = np.array([50.0, MAX_EXPONENT, 50.0, MAX_EXPONENT, self.ymin])
        if starts is None:
            starts = []
            for alpha, beta, f in itertools.product((0.2, 0.5, 1.0), (0.2, 0.5, 1.0), (0.0, 0.5)):
                half = np.log(max((np.median(y) - f * self.ymin) / 2, 1e-12))
                starts.append(np.array([half, alpha, half, beta, f * self.ymin]))
        return _best_of_starts(residuals, jacobian, starts, lower, upper)

    def to_params(self, t: np.ndarray) -> np.ndarray:
        """Internal -> original-unit (E, A, alpha, B, beta)."""
        return np.array(
            [t[4], np.exp(t[0]) * self.n_ref ** t[1], t[1], np.exp(t[2]) * self.d_ref ** t[3], t[3]]
        )


def weights_from_sigma(sigma: Sequence[float] | None, n: int) -> np.ndarray:
    """Residual weights 1/sigma scaled to mean 1 (ones without sigma); sigma must be finite and positive."""
    if sigma is None:
        return np.ones(n)
    s = np.asarray(sigma, float)
    if s.shape != (n,) or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError(f"sigma must hold {n} finite positive uncertainties, got {s}")
    return (1 / s) / np.mean(1 / s)


def _fit(
    form: str,
    names: Sequence[str],
    xs: Sequence[np.ndarray],
    y: np.ndarray,
    make_problem: Callable,
    n_boot: int,
    confidence: float,
    seed: int,
    sigma: Sequence[float] | None = None,
) -> PowerLawFit:
    problem = make_problem(*xs, y)
    w = weights_from_sigma(sigma, len(y))
    best = problem.solve(*xs, y, w=w)
    params = problem.to_params(best)
    pred = _EVALUATORS[form](params, *xs)
    rmse = float(np.sqrt(np.mean(np.log(pred / y) ** 2)))
    keys = np.stack(xs, axis=1)
    n_distinct = len(np.unique(keys, axis=0))
    method = (
        "none"
        if n_distinct <= problem.n_params
        else "pairs"
        if n_distinct >= 2 * problem.n_params
        else "residual"
    )
    samples = []
    rng = np.random.default_rng(seed)
    # residual bootstrap: log residuals resampled onto the fitted curve, inflated for the fitted degrees of freedom
    residuals = np.log(y / pred) * np.sqrt(len(y) / max(len(y) - problem.n_params, 1))
    for _ in range(n_boot if method != "none" else 0):
        idx = rng.integers(0, len(y), len(y))
        if method == "pairs":
            if len(np.unique(keys[idx], axis=0)) <= problem.n_params:
                continue  # a resample with too few distinct sizes cannot pin the parameters
            sample_x, sample_y, sample_w = [x[idx] for x in xs], y[idx], w[idx]
        else:
            sample_x, sample_y, sample_w = list(xs), pred * np.exp(residuals[idx]), w
        try:
            t = problem.solve(*sample_x, sample_y, starts=[best], w=sample_w)
        except (RuntimeError, ValueError):
            continue
        samples.append(problem.to_params(t))
    samples_arr = np.array(samples).reshape(-1, problem.n_params)
    ci = None
    if samples_arr.shape[0] > 0:
        tail = 100 * (1 - confidence) / 2
        lo, hi = np.percentile(samples_arr, [tail, 100 - tail], axis=0)
        ci = {name: (float(a), float(b)) for name, a, b in zip(names, lo, hi)}
    return PowerLawFit(
        form=form,
        params={k: float(v) for k, v in zip(names, params)},
        ci=ci,
        n_points=len(y),
        rmse_log=rmse,
        confidence=confidence,
        bootstrap=method,
        n_boot=int(samples_arr.shape[0]),
        samples=samples_arr,
    )


def fit_power_law(
    x: Sequence[float],
    loss: Sequence[float],
    *,
    variable: str = "N",
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    sigma: Sequence[float] | None = None,
) -> PowerLawFit:
    """Fit L(x) = A x^-alpha + L_inf (variable "N") or B x^-beta + L_inf (variable "D")."""
    x_arr, y = np.asarray(x, float), np.asarray(loss, float)
    _check(y, x_arr)
    if variable not in ("N", "D"):
        raise ValueError(f"variable must be 'N' or 'D', got {variable!r}")
    names = ("A", "alpha", "L_inf") if variable == "N" else ("B", "beta", "L_inf")
    return _fit(
        f"L({variable})", names, [x_arr], y, _SingleProblem, n_boot, confidence, seed, sigma
    )


def fit_joint(
    n: Sequence[float],
    d: Sequence[float],
    loss: Sequence[float],
    *,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    sigma: Sequence[float] | None = None,
) -> PowerLawFit:
    """Fit L(N, D) = E + A N^-alpha + B D^-beta."""
    n_arr, d_arr, y = np.asarray(n, float), np.asarray(d, float), np.asarray(loss, float)
    _check(y, n_arr, d_arr)
    return _fit(
        "L(N,D)",
        ("E", "A", "alpha", "B", "beta"),
        [n_arr, d_arr],
        y,
        _JointProblem,
        n_boot,
        confidence,
        seed,
        sigma,
    )
