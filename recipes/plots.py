"""Every picture the recipes and app.py draw, with one font that has Chinese glyphs (THUCNews class names, Chinese
tokens): confusion matrices (text and image classifiers), ViT attention rollout, translation cross-attention."""

import functools
import math
from importlib.resources import files
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

CJK_FONT = files("mplfonts") / "fonts" / "NotoSansCJKsc-Regular.otf"  # Noto Sans CJK SC: Latin and Chinese glyphs
MAX_HEATMAP_LABELS = 40  # tokens labelled per heatmap axis; longer axes label every k-th token


def save_figure(figure, path: Path) -> None:
    """A PNG at 120 dpi; the figure is closed, so a long run does not keep every figure in memory."""
    figure.savefig(path, dpi=120)
    plt.close(figure)


@functools.cache
def cjk_font() -> font_manager.FontProperties:
    """The CJK font, registered with matplotlib once; matplotlib's default (DejaVu Sans) draws Chinese as boxes."""
    font_manager.fontManager.addfont(str(CJK_FONT))
    return font_manager.FontProperties(fname=str(CJK_FONT))


def confusion_counts(references: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    """``counts[i, j]`` = how many examples of true class i were predicted as class j."""
    return np.bincount(references * num_labels + predicted, minlength=num_labels**2).reshape(num_labels, num_labels)


def plot_confusion_matrix(counts: np.ndarray, label_names: list[str], title: str, path: Path) -> None:
    """Annotated heatmap; rows are true classes, columns predicted ones. Long class names are slanted."""
    size, font = len(label_names), cjk_font()
    figure, axes = plt.subplots(figsize=(2 + 0.7 * size, 1.5 + 0.6 * size))
    image = axes.imshow(counts, cmap="Blues")
    slanted = {"rotation": 45, "ha": "right"} if max(map(len, label_names)) > 2 else {}
    axes.set_xticks(range(size), label_names, fontproperties=font, **slanted)
    axes.set_yticks(range(size), label_names, fontproperties=font)
    for row in range(size):
        for column in range(size):
            color = "white" if counts[row, column] > counts.max() / 2 else "black"
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", fontsize=8, color=color)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title, fontproperties=font)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, path)


def attention_rollout(attentions: tuple[torch.Tensor, ...], grid_height: int, grid_width: int) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): per layer, heads averaged and the residual connection added as
    ``0.5 * A + 0.5 * I`` (rows renormalised); the layers multiplied in order. Returns how much the final CLS token
    draws on each patch, ``(batch, grid_height, grid_width)``, each map scaled to a maximum of 1."""
    rollout = None
    for layer_attention in attentions:
        attention = layer_attention.float().mean(dim=1)
        attention = 0.5 * attention + 0.5 * torch.eye(attention.shape[-1])
        attention = attention / attention.sum(dim=-1, keepdim=True)
        rollout = attention if rollout is None else attention @ rollout
    cls_to_patches = rollout[:, 0, 1:].reshape(-1, grid_height, grid_width)
    return cls_to_patches / cls_to_patches.amax(dim=(1, 2), keepdim=True)


def plot_attention_rollout(images: list, maps: torch.Tensor, titles: list[str], path: Path) -> None:
    """Each image (grayscale or RGB, as given) with its rollout map upsampled over it."""
    font = cjk_font()
    figure, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6), squeeze=False)
    for axis, image, attention_map, title in zip(axes[0], images, maps, titles):
        array = np.asarray(image)
        axis.imshow(array, cmap="gray" if array.ndim == 2 else None)
        axis.imshow(
            attention_map.numpy(), cmap="jet", alpha=0.45, extent=(-0.5, array.shape[1] - 0.5, array.shape[0] - 0.5, -0.5),
            interpolation="bilinear",
        )
        axis.set_title(title, fontsize=9, fontproperties=font)
        axis.axis("off")
    figure.suptitle("ViT attention rollout (CLS token -> patches)", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def cross_attention_figure(weights: np.ndarray, source_tokens: list[str], target_tokens: list[str], title: str | None = None):
    """Cross-attention weights (generated tokens x source tokens) as a heatmap whose size stays within a page:
    at most ``MAX_HEATMAP_LABELS`` labels per axis. The caller shows or saves the figure."""
    font = cjk_font()
    width = min(14.0, 2.5 + 0.42 * len(source_tokens))
    height = min(10.0, 1.8 + 0.38 * len(target_tokens))
    figure, axes = plt.subplots(figsize=(width, height))
    image = axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    for set_ticks, tokens, extra in (
        (axes.set_xticks, source_tokens, {"rotation": 60, "ha": "right"}),
        (axes.set_yticks, target_tokens, {}),
    ):
        step = math.ceil(len(tokens) / MAX_HEATMAP_LABELS)
        positions = range(0, len(tokens), step)
        set_ticks(positions, [tokens[i] for i in positions], fontproperties=font, **extra)
    axes.set_xlabel("source tokens")
    axes.set_ylabel("generated tokens")
    if title:
        axes.set_title(title, fontproperties=font)
    figure.colorbar(image, ax=axes, fraction=0.05)
    figure.tight_layout()
    return figure
