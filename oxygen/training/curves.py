"""Save the training curve (train loss and validation metrics per epoch) as a PNG and JSON, and
per-iteration monitors (one panel each) for post-training.

    save_curves(result.history, Path("runs/office/curve.png"))
    save_panels(history, Path("runs/post/monitors.png"), ["reward", "kl"], x="iteration")
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_curves(history: list[dict[str, float]], png: Path, title: str = "training") -> Path:
    """Plot train_loss (left) and every valid_* metric (right) against epoch; write png + json."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.with_suffix(".json").write_text(json.dumps(history, indent=1))
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(epochs, [h.get("train_loss", float("nan")) for h in history], marker="o")
    a.set(xlabel="epoch", ylabel="train loss", title=f"{title}: loss")
    for key in sorted(k for k in history[0] if k.startswith("valid_")):
        b.plot(epochs, [h[key] for h in history], marker="o", label=key[6:])
    b.set(xlabel="epoch", title=f"{title}: validation")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def save_panels(history: list[dict[str, float]], png: Path, keys: list[str], x: str = "iteration",
                title: str = "", cols: int = 4) -> Path:
    """One panel per key of `keys` present in any history row, against `x` (a key measured on some
    rows only is drawn through those); write png + json."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.with_suffix(".json").write_text(json.dumps(history, indent=1))
    keys = [k for k in keys if any(k in h for h in history)]
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot([h[x] for h in history if key in h], [h[key] for h in history if key in h], marker=".")
        ax.set(title=key, xlabel=x)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
