"""app.py's handlers called directly (the browser test drives the same ones through the page): what each tab returns
for good and bad input, on tiny models; missing models; the MNIST-style framing of a drawn or uploaded digit."""

import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from app_testing import save_tiny_app_models

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import app  # noqa: E402
import plots  # noqa: E402  (app.py put recipes/ on sys.path)

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_transformer_translator, tiny_translation_tokenizer):
    models_dir = save_tiny_app_models(
        tmp_path_factory.mktemp("app_models"), tiny_transformer_translator, tiny_translation_tokenizer,
        app.EXAMPLE_HEADLINES,
    )
    loaded = app.load_models(app.parse_args(["--models_dir", str(models_dir)]))
    assert all(slot.problem is None for slot in loaded.values()), {name: slot.problem for name, slot in loaded.items()}
    return loaded


def test_missing_models_are_named_in_the_page(tmp_path):
    """An empty models folder: every slot says where it looked, and every tab answers with that sentence."""
    models = app.load_models(app.parse_args(["--models_dir", str(tmp_path)]))
    assert all(slot.pipe is None for slot in models.values())
    assert f"No GRU translator at `{tmp_path / 'demo_translation_gru'}`" in models["gru"].problem
    assert app.translate(models, "hello", "GRU", 4, 20) == ("", None, models["gru"].problem)
    assert app.classify(models, "标题") == (None, models["text_classifier"].problem)
    *scores, seen, rollout, message = app.read_digit(models, PIL.Image.new("L", (28, 28)), "upload")
    assert scores == [None, None, None] and seen is None and rollout is None
    assert models["afno"].problem in message


def test_a_named_folder_overrides_the_default(tmp_path, models):
    args = app.parse_args(["--models_dir", str(tmp_path), "--gru", models["gru"].source])
    loaded = app.load_models(args)
    assert loaded["gru"].problem is None and loaded["transformer"].pipe is None


def test_translate_returns_text_heatmap_and_notes(models):
    translation, figure, message = app.translate(models, "i like tea", "Transformer", 4, 20)
    assert translation.replace(" ", "") == "我喜欢茶" and message == ""
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels[:4] == ["我", "喜", "欢", "茶"]  # generated tokens on the y axis, Chinese glyphs
    assert app.translate(models, " ", "Transformer", 4, 20) == ("", None, "Type an English sentence to translate.")
    _, _, message = app.translate(models, "tea " * 2500, "GRU", 2, 5)
    assert "2,501 tokens long; the model reads only its first 16" in message
    _, _, message = app.translate(models, "😀", "Transformer", 1, 5)
    assert "knows none of these words" in message


def test_heatmap_of_a_long_input_stays_page_sized(models):
    _, figure, _ = app.translate(models, "tea " * 2500, "Transformer", 1, 128)
    width, height = figure.get_size_inches()
    assert width <= 14 and height <= 10
    assert len(figure.axes[0].get_xticklabels()) <= plots.MAX_HEATMAP_LABELS


def test_classify_gives_ten_named_classes(models):
    scores, message = app.classify(models, app.EXAMPLE_HEADLINES[0])
    assert len(scores) == 10 and message == ""
    assert "财经 finance" in scores and "娱乐 entertainment" in scores
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    scores, message = app.classify(models, "长" * 10_000)
    assert len(scores) == 10 and "tokens long; the model reads only its first 32" in message
    assert app.classify(models, "") == (None, "Type a Chinese headline, or click one of the examples.")


def test_frame_digit_lays_out_like_mnist():
    """Dark ink on a light page, off-centre and large: framed as light ink on black, in a 20 px box, centred."""
    page = np.full((300, 400), 250.0)
    page[20:220, 300:340] = 10.0  # a tall bar near the top right
    digit = np.asarray(app.frame_digit(page), dtype=np.float64)
    assert digit.shape == (28, 28)
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # black background
    rows, columns = np.nonzero(digit > 128)
    assert rows.max() - rows.min() + 1 == app.MNIST_BOX  # the longer side scaled to the box
    mass = digit.sum()
    centre = ((digit.sum(axis=1) * np.arange(28)).sum() / mass, (digit.sum(axis=0) * np.arange(28)).sum() / mass)
    assert centre == pytest.approx((13.5, 13.5), abs=1.0)
    assert app.frame_digit(np.full((50, 50), 255.0)) is None  # nothing drawn


def test_read_digit_on_sketch_and_odd_images(models):
    sketch = PIL.Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # what an untouched sketchpad sends: transparent
    assert app.read_digit(models, sketch, "sketch")[-1].startswith("The sketch is blank")
    assert app.read_digit(models, app.sketch_image(None), "sketch")[-1].startswith("The sketch is empty")
    stroke = np.zeros((280, 280, 4), dtype=np.uint8)
    stroke[40:240, 130:150] = (0, 0, 0, 255)  # a black vertical stroke on the transparent canvas
    sixteen_bit = PIL.Image.fromarray(stroke[..., 3].astype(np.uint16) * 257)  # a white stroke on black, 0..65535
    assert sixteen_bit.mode == "I;16"
    for image in (PIL.Image.fromarray(stroke, mode="RGBA"), sixteen_bit):
        *scores, seen, rollout, message = app.read_digit(models, image, "sketch")
        assert message == "" and all(len(score) == 3 for score in scores)
        assert seen.size == (140, 140) and rollout.size == (280, 280)


def test_open_upload_refuses_huge_and_non_images(tmp_path):
    PIL.Image.new("L", (8000, 8000)).save(tmp_path / "huge.png")
    image, problem = app.open_upload(str(tmp_path / "huge.png"))
    assert image is None and "8,000 x 8,000 pixels: too large" in problem
    (tmp_path / "notes.png").write_text("not a picture")
    image, problem = app.open_upload(str(tmp_path / "notes.png"))
    assert image is None and "`notes.png` is not an image that can be read" in problem
    PIL.Image.new("RGB", (3000, 1500)).save(tmp_path / "big.jpg")
    image, problem = app.open_upload(str(tmp_path / "big.jpg"))
    assert problem is None and max(image.size) <= 1024
