"""recipes/plots.py: one module draws every picture, with a font that has the Chinese glyphs (THUCNews class names,
generated Chinese tokens); matplotlib's default font would draw them as boxes and warn "Glyph ... missing"."""

import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))  # recipes/ is a script folder
import plots  # noqa: E402

CHINESE_CLASS_NAMES = ["财经", "房产", "股票", "教育"]


def drawn_without_missing_glyphs(draw) -> None:
    """Runs ``draw`` (which saves a PNG, so every text is laid out) and fails on any missing-glyph warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    missing = [str(warning.message) for warning in caught if "missing from font" in str(warning.message)]
    assert not missing, missing


def test_confusion_matrix_draws_chinese_class_names(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: (figures.append(figure), figure.savefig(path)))
    counts = plots.confusion_counts(np.array([0, 1, 2, 3, 3]), np.array([0, 1, 3, 3, 2]), len(CHINESE_CLASS_NAMES))
    assert counts[3].tolist() == [0, 0, 1, 1]
    drawn_without_missing_glyphs(
        lambda: plots.plot_confusion_matrix(counts, CHINESE_CLASS_NAMES, "测试准确率 60%", tmp_path / "confusion_matrix.png")
    )
    labels = figures[0].axes[0].get_xticklabels()
    assert [label.get_text() for label in labels] == CHINESE_CLASS_NAMES
    assert {Path(label.get_fontproperties().get_file()).name for label in labels} == {"NotoSansCJKsc-Regular.otf"}
    assert PIL.Image.open(tmp_path / "confusion_matrix.png").size[0] > 0


def test_cross_attention_heatmap_and_rollout_draw_chinese(tmp_path):
    figure = plots.cross_attention_figure(np.random.rand(3, 2), ["▁tea", "</s>"], ["我", "喜欢", "茶"], "我喜欢茶")
    drawn_without_missing_glyphs(lambda: plots.save_figure(figure, tmp_path / "cross_attention.png"))
    maps = plots.attention_rollout((torch.softmax(torch.randn(1, 2, 5, 5), -1),), 2, 2)
    drawn_without_missing_glyphs(
        lambda: plots.plot_attention_rollout([np.zeros((8, 8))], maps, ["真: 财经"], tmp_path / "attention_rollout.png")
    )


@pytest.mark.parametrize("recipe", ["train_text_classification", "train_image_classification"])
def test_text_and_image_recipes_share_the_plots(recipe):
    """Both classifiers draw their confusion matrix with the skeleton's ClassificationTask, which draws with plots."""
    skeleton = importlib.import_module("recipe_skeleton")
    task = importlib.import_module(recipe).TASK
    assert isinstance(task, skeleton.ClassificationTask)
    assert skeleton.plot_confusion_matrix is plots.plot_confusion_matrix
    assert skeleton.confusion_counts is plots.confusion_counts
