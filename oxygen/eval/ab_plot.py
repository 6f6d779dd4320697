"""How an A/B report (`oxygen.eval.ab.ab_report`) is shown to people: the lift plot (one panel per
metric, lifts over the control arm per scope with their 95% intervals as error bars) and a
markdown table per scope.

    save_lift_plot(report, "sasrec", Path("runs/ab/ab.png"))
    print(markdown_table(report, "sasrec"))
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from oxygen.eval.ab import METRICS  # noqa: E402


def save_lift_plot(report: dict, control: str, png: Path) -> Path:
    """Write `png`: per metric, each non-control arm's lift over `control` (in %) per scope, error
    bars from the paired bootstrap interval (symlog axis: an oracle's large lifts and a baseline's
    small ones on one scale). Returns the path."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    arms = [a for a in report if a != control]
    scopes = list(report[control])
    fig, grid = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    axes = grid.reshape(-1)
    width = 0.8 / max(len(arms), 1)
    for ax, metric in zip(axes, METRICS):
        for n, arm in enumerate(arms):
            xs, ys, lo, hi = [], [], [], []
            for x, scope in enumerate(scopes):
                lift = report[arm][scope]["lift_vs_control"][metric]
                if lift["value"] is None or lift["ci95"][0] is None:
                    continue
                v = 100 * lift["value"]
                xs.append(x - 0.4 + width * (n + 0.5))
                ys.append(v)
                lo.append(v - 100 * lift["ci95"][0])
                hi.append(100 * lift["ci95"][1] - v)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=arm)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xticks(range(len(scopes)), scopes)
        ax.set(title=f"{metric}: lift vs {control}", ylabel="lift (%)")
    if arms:  # a report of the control alone has nothing to label
        axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _cell(m: dict, digits: int) -> str:
    """'value [lo, hi]' of one metric."""
    lo, hi = m["ci95"]
    return f"{m['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _lift_cell(lift: dict) -> str:
    """'+x.x% [lo, hi]' (a star when significant) of one lift; '-' when undefined."""
    if lift["value"] is None:
        return "-"
    lo, hi = lift["ci95"]
    bounds = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo is not None else ""
    return f"{100 * lift['value']:+.1f}%{bounds}{' *' if lift['significant'] else ''}"


def markdown_table(report: dict, control: str) -> str:
    """One markdown table: a line per (scope, arm) with users, the four metrics with their 95%
    intervals and the lifts over `control` (* = the interval excludes 0)."""
    head = ["scope", "arm", "users", *METRICS, *(f"{m} lift" for m in METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scope in report[control]:
        for arm, by_scope in report.items():
            r = by_scope[scope]
            cells = [scope, arm, str(r["users"]), _cell(r["uctr"], 3), _cell(r["ucvr"], 3), _cell(r["orders"], 0),
                     _cell(r["gmv"], 0)]
            cells += ["(control)" if arm == control else _lift_cell(r["lift_vs_control"][m]) for m in METRICS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
