"""The forest plot of one pooled term: each site's estimate with its confidence interval (a square sized by its
fixed-effect weight), then the fixed-effect and random-effects pooled estimates as diamonds, and the coverage and
heterogeneity under the title. The caller saves the figure (`fig.savefig(path, format="png")`); drawing uses the Agg
backend, never a display."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scipy import stats

from federation.pooling_errors import PoolingError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from federation.pooling import PooledEstimate


def forest_plot(pooled: PooledEstimate, term: str) -> Figure:
    """A matplotlib Figure of `term` in `pooled` (PoolingError when the term was not pooled)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if term not in pooled.terms:
        raise PoolingError("malformed-request", "the term was not pooled")
    t = pooled.terms[term]
    crit = float(stats.norm.isf(pooled.alpha / 2))
    diamonds = [p for p in (t.fixed, t.random) if p is not None]
    rows = len(t.sites) + len(diamonds)
    fig = Figure(figsize=(7.5, 1.6 + 0.42 * rows))
    FigureCanvasAgg(fig)  # Agg, whatever the process's default backend is
    ax = fig.add_subplot()
    weights = {s: 1 / se**2 for s, (_, se) in t.site_estimates.items()}
    biggest = max(weights.values())
    labels = []
    y = rows
    for site, (estimate, se) in t.site_estimates.items():
        ax.plot([estimate - crit * se, estimate + crit * se], [y, y], color="0.25", linewidth=1.2)
        ax.plot([estimate], [y], marker="s", color="0.25", markersize=4 + 8 * (weights[site] / biggest) ** 0.5)
        labels.append((y, site))
        y -= 1
    for p, colour in zip(diamonds, ("tab:blue", "tab:red"), strict=False):
        xs = [p.ci_low, p.estimate, p.ci_high, p.estimate]
        ax.fill(xs, [y, y + 0.3, y, y - 0.3], color=colour, alpha=0.85)  # fill, unlike a patch, rescales the axes
        labels.append((y, p.method))
        y -= 1
    ax.axvline(0.0, color="0.6", linestyle="--", linewidth=0.8)
    if t.fixed is not None:
        ax.axvline(t.fixed.estimate, color="tab:blue", linestyle=":", linewidth=0.8)
    ax.set_yticks([pos for pos, _ in labels], [label for _, label in labels])
    ax.set_ylim(y + 0.5, rows + 0.5)
    ax.set_xlabel(f"estimate ({round((1 - pooled.alpha) * 100)}% CI)")
    stats_line = (
        f"I² {t.i2:.0%}, tau² {t.tau2:.3g}, Q p {t.q_p:.3g}" if t.i2 is not None else "one site: no heterogeneity"
    )
    used = f"{term} pooled over {len(t.sites)} site(s)"
    if t.missing_at:
        used += f" (not estimated at {', '.join(t.missing_at)})"
    ax.set_title(f"{used}\n{pooled.coverage.text()}\n{stats_line}", fontsize=8, wrap=True)
    fig.tight_layout()
    return fig
