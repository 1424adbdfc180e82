"""Pictures, with matplotlib's Agg backend (no display): training curves, a 2-D projection of
clip embeddings, a confusion matrix, and novelty + boundaries over a clip's log-mel. Each
function writes one PNG and returns its path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(history: list[dict], path: str) -> str:
    """Loss, KL and active dims per epoch (entry 0: before training)."""
    epochs = [h.get("epoch", 0) for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(epochs, [h.get("val_loss") for h in history], "o-", label="val loss")
    axes[0].plot(epochs[1:], [h.get("loss") for h in history[1:]], "o-", label="train loss")
    axes[1].plot(epochs, [h.get("val_kl") for h in history], "o-", color="C2")
    axes[2].plot(epochs, [h.get("active_dims") for h in history], "o-", color="C3")
    for ax, title in zip(axes, ("ELBO loss per frame", "KL per frame (val)", "active latent dims")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend()
    return _save(fig, path)


def embedding_projection(x: np.ndarray, labels: list[str], path: str) -> str:
    """First two principal components of standardised embeddings, coloured by label."""
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    p = z @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label in sorted(set(labels)):
        m = np.array([v == label for v in labels])
        ax.scatter(p[m, 0], p[m, 1], s=12, label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8)
    ax.set_title("clip embeddings")
    return _save(fig, path)


def confusion_matrix(confusion: np.ndarray, classes: list[str], path: str) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _save(fig, path)


def novelty_over_logmel(
    logmel: np.ndarray,
    frame_rate: float,
    novelty: np.ndarray,
    latent_rate: float,
    detected: dict[str, list[float]],
    reference: list[float],
    path: str,
) -> str:
    """Log-mel (bands, T) over the novelty curve, with the reference boundaries and each level of
    detected boundaries (e.g. events, segments) drawn in its own style, named in a legend."""
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    a0.imshow(logmel, origin="lower", aspect="auto", extent=(0, logmel.shape[1] / frame_rate, 0, logmel.shape[0]))
    a0.set_ylabel("mel band")
    a1.plot(np.arange(len(novelty)) / latent_rate, novelty, color="k", lw=1, label="event novelty")
    a1.set_ylabel("novelty")
    a1.set_xlabel("seconds")
    styles = [("C2", 1.2, "--"), ("C1", 1.0, ":"), ("C3", 2.0, "-"), ("C4", 1.5, "-.")]  # truth first
    levels = [("truth", reference), *detected.items()]
    for (name, times), (color, width, dash) in zip(levels, styles):
        for ax in (a0, a1):
            for k, t in enumerate(times):
                label = f"{name} ({len(times)})" if k == 0 and ax is a1 else None
                ax.axvline(t, color=color, lw=width, ls=dash, label=label)
    a1.legend(loc="upper right", fontsize=7, ncol=len(levels) + 1, framealpha=0.8)
    return _save(fig, path)
