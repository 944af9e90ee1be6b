"""Pictures the image-classification recipe saves next to a trained model: the test confusion matrix and, for ViT,
attention-rollout overlays that show which patches the CLS token draws on."""

from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def confusion_counts(references: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    """``counts[i, j]`` = how many images of true class i were predicted as class j."""
    return np.bincount(references * num_labels + predicted, minlength=num_labels**2).reshape(num_labels, num_labels)


def plot_confusion_matrix(counts: np.ndarray, label_names: list[str], title: str, path: Path) -> None:
    """Annotated heatmap; rows are true classes, columns predicted ones."""
    size = len(label_names)
    figure, axes = plt.subplots(figsize=(2 + 0.6 * size, 1.5 + 0.55 * size))
    image = axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(size), label_names, rotation=45 if max(map(len, label_names)) > 2 else 0)
    axes.set_yticks(range(size), label_names)
    for row in range(size):
        for column in range(size):
            color = "white" if counts[row, column] > counts.max() / 2 else "black"
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", fontsize=8, color=color)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


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
    figure, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6), squeeze=False)
    for axis, image, attention_map, title in zip(axes[0], images, maps, titles):
        array = np.asarray(image)
        axis.imshow(array, cmap="gray" if array.ndim == 2 else None)
        axis.imshow(
            attention_map.numpy(), cmap="jet", alpha=0.45, extent=(-0.5, array.shape[1] - 0.5, array.shape[0] - 0.5, -0.5),
            interpolation="bilinear",
        )
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle("ViT attention rollout (CLS token -> patches)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
