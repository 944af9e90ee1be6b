"""A web demo of the suite's three tasks, built with Gradio in the shape of a Hugging Face Space (this file at the root).

    python app.py                                   # the folders `make demo` writes, under outputs/
    python app.py --models_dir elsewhere --port 8000
    APP_VIT_MODEL=user/my-vit python app.py         # any model: a folder or a Hub repo id, one option/variable each

Tabs: English -> Chinese translation (Transformer or GRU, beam size, length, cross-attention heatmap), Chinese
headline classification (ten classes as bars), and digit reading (sketch or upload; ViT, GFNet and AFNO side by side,
with the ViT's attention rollout).

Models are loaded only through public interfaces: ``pipeline(task, model=..., trust_remote_code=True)`` and the Auto
classes behind it, so a folder saved by the recipes, or a Hub repo of one, works on a machine without this package.
A model that is missing or fails to load costs only its own part of the page, which says why. Every input the page
can send gets a result or a message in the page; an unexpected error is logged with its traceback on the server and
named in the page. Nothing is fetched at run time: analytics are off, no share link is made.
"""

import argparse
import functools
import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads this at import

import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402
from transformers import pipeline  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))
from plots import CJK_FONT, attention_rollout, cross_attention_figure  # noqa: E402

logger = logging.getLogger("app")

# (option, environment variable, folder under --models_dir that `make demo` writes, what it is)
MODEL_OPTIONS = {
    "transformer": ("APP_TRANSFORMER_MODEL", "demo_translation_transformer", "Transformer translator"),
    "gru": ("APP_GRU_MODEL", "demo_translation_gru", "GRU translator"),
    "text_classifier": ("APP_TEXT_CLASSIFIER_MODEL", "demo_text_classification", "headline classifier"),
    "vit": ("APP_VIT_MODEL", "demo_image_classification_vit", "ViT digit classifier"),
    "gfnet": ("APP_GFNET_MODEL", "demo_image_classification_gfnet", "GFNet digit classifier"),
    "afno": ("APP_AFNO_MODEL", "demo_image_classification_afno", "AFNO digit classifier"),
}
TRANSLATORS = {"Transformer": "transformer", "GRU": "gru"}
DIGIT_READERS = {"ViT": "vit", "GFNet": "gfnet", "AFNO": "afno"}

# THUCNews' class names (recipes/thucnews_data.py reads them from class.txt) with the Chinese names of its README.
CHINESE_CLASS_NAMES = {
    "finance": "财经", "realty": "房产", "stocks": "股票", "education": "教育", "science": "科技",
    "society": "社会", "politics": "时政", "sports": "体育", "game": "游戏", "entertainment": "娱乐",
}
EXAMPLE_HEADLINES = [
    "央行宣布下调存款准备金率0.5个百分点",
    "湖人加时险胜凯尔特人 科比独得40分",
    "北京四环内新盘均价突破每平米4万元",
    "《魔兽世界》新资料片今日开放测试",
    "教育部：明年高考报名人数预计再创新高",
]
EXAMPLE_SENTENCES = ["I love you.", "Where is the train station?", "It's very cold today."]

HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
# Browsers without a Chinese font (a bare server's chromium, say) would draw boxes: the page offers the same font,
# fetched from this server only when no local CJK font is found and only for CJK characters.
CJK_FONT_CSS = f"""
@font-face {{
    font-family: "CJK fallback";
    src: local("Noto Sans CJK SC"), local("Source Han Sans SC"), local("PingFang SC"), local("Microsoft YaHei"),
        url("/gradio_api/file={CJK_FONT}") format("opentype");
    unicode-range: U+2E80-33FF, U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+FF00-FFEF;
}}
"""
THEME = gr.themes.Default(
    font=[gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif", "CJK fallback"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "Consolas", "monospace", "CJK fallback"],
)
MAX_UPLOAD_PIXELS = 50_000_000  # larger uploads are refused with a message instead of being decoded
MNIST_BOX, MNIST_SIDE = 20, 28  # MNIST digits: scaled into a 20x20 box, centred by mass in a 28x28 frame


@dataclass
class Loaded:
    """One model slot: its pipeline, or the sentence that says why there is none."""

    pipe: object | None
    source: str
    problem: str | None = None


def load_pipeline(task: str, source: str, what: str, hub_allowed: bool) -> Loaded:
    """``pipeline(task, model=source, trust_remote_code=True)``; a missing folder or a failed load becomes a message.
    ``source`` is a folder, or (``hub_allowed``: named by the user, not a default) a Hub repo id."""
    if not Path(source).exists() and not (hub_allowed and HUB_REPO_ID.fullmatch(source)):
        return Loaded(None, source, f"No {what} at `{source}`: run `make app` (it trains the demo models), or name one.")
    try:
        return Loaded(pipeline(task, model=source, trust_remote_code=True), source)
    except Exception as error:  # any failure to load is shown in the page; the rest of the app still works
        logger.exception("could not load the %s from %s", what, source)
        return Loaded(None, source, f"The {what} at `{source}` could not be loaded: {type(error).__name__}: {error}")


def load_models(args: argparse.Namespace) -> dict[str, Loaded]:
    """Every model slot of :data:`MODEL_OPTIONS`, from the option or variable that names it, else its default folder."""
    tasks = {"transformer": "translation", "gru": "translation", "text_classifier": "text-classification"}
    models = {}
    for name, (_, folder, what) in MODEL_OPTIONS.items():
        named = getattr(args, name)
        source = named or str(Path(args.models_dir) / folder)
        models[name] = load_pipeline(tasks.get(name, "image-classification"), source, what, hub_allowed=named is not None)
    return models


def shows_errors(*fallback):
    """Runs a handler so that an unexpected error reaches the page as a sentence (and the log with its traceback)
    instead of Gradio's bare "Error": the handler's outputs become ``fallback`` plus that sentence."""

    def decorate(handler):
        @functools.wraps(handler)
        def run(*args):
            try:
                return handler(*args)
            except Exception as error:
                logger.exception("%s failed", handler.__name__)
                return (*fallback, f"**Something went wrong:** {type(error).__name__}: {error}")

        return run

    return decorate


# ---------------------------------------------------------------------------------------------- translation


def cross_attention(translator, text: str, generated: torch.Tensor) -> np.ndarray:
    """The last decoder layer's cross-attention over the source, averaged over heads, for the sequence that
    ``generate`` chose: one teacher-forced pass with the pipeline's own tokenization of ``text``. Returns
    ``weights[generated token, source token]``."""
    inputs = translator.preprocess(text)
    with torch.no_grad():
        output = translator.model(**inputs, decoder_input_ids=generated[None, :-1], output_attentions=True)
    return output.cross_attentions[-1][0].mean(0).numpy()


def translate(models: dict[str, Loaded], text: str, model_name: str, num_beams: int, max_new_tokens: int):
    """-> (translation, heatmap figure or None, message)."""
    if not model_name:
        return "", None, "No translation model is loaded (see above)."
    loaded = models[TRANSLATORS[model_name]]
    if loaded.pipe is None:
        return "", None, loaded.problem
    if not text or not text.strip():
        return "", None, "Type an English sentence to translate."
    translator, tokenizer = loaded.pipe, loaded.pipe.tokenizer
    notes = []
    num_tokens, limit = len(tokenizer(text, verbose=False)["input_ids"]), translator.max_source_length()
    if num_tokens > limit:
        notes.append(f"The text is {num_tokens:,} tokens long; the model reads only its first {limit}.")
    source_ids = translator.preprocess(text)["input_ids"][0]
    if all(token in tokenizer.all_special_ids for token in source_ids.tolist()):
        notes.append("The model knows none of these words (all are unknown tokens): its translation is a guess.")
    record = translator(text, num_beams=int(num_beams), max_new_tokens=int(max_new_tokens), return_tensors=True)[0]
    generated = record["translation_token_ids"]
    translation = tokenizer.decode(generated, skip_special_tokens=True)
    if not translation.strip():
        notes.append("The model produced no Chinese for this input.")
    figure = None
    if len(generated) > 1:
        weights = cross_attention(translator, text, generated)
        source_tokens = tokenizer.convert_ids_to_tokens(source_ids)
        target_tokens = tokenizer.convert_ids_to_tokens(generated[1:])
        figure = cross_attention_figure(weights, source_tokens, target_tokens)
    return translation, figure, " ".join(notes)


# ---------------------------------------------------------------------------------------------- headlines


def class_name(label: str) -> str:
    """"财经 finance" for a THUCNews class; other labels as they are."""
    chinese = CHINESE_CLASS_NAMES.get(label)
    return f"{chinese} {label}" if chinese else label


def classify(models: dict[str, Loaded], text: str):
    """-> ({class name: score} for every class, message)."""
    loaded = models["text_classifier"]
    if loaded.pipe is None:
        return None, loaded.problem
    if not text or not text.strip():
        return None, "Type a Chinese headline, or click one of the examples."
    classifier = loaded.pipe
    notes = []
    num_tokens, limit = len(classifier.tokenizer(text, verbose=False)["input_ids"]), classifier.max_length()
    if num_tokens > limit:
        notes.append(f"The text is {num_tokens:,} tokens long; the model reads only its first {limit}.")
    scores = classifier(text, top_k=None)
    return {class_name(score["label"]): score["score"] for score in scores}, " ".join(notes)


# ---------------------------------------------------------------------------------------------- digits


def grayscale(image: PIL.Image.Image, processor) -> np.ndarray:
    """Any PIL image as a (H, W) 0..255 array, by the model's own image processor's colour rules (alpha composited
    on white, 16-bit scaled, palettes and CMYK through RGB); no resizing or normalising."""
    pixel_values = processor(
        image, num_channels=1, do_resize=False, do_rescale=False, do_normalize=False, return_tensors="np"
    )["pixel_values"]
    return np.asarray(pixel_values[0, 0], dtype=np.float64)


def frame_digit(gray: np.ndarray) -> PIL.Image.Image | None:
    """The digit laid out as MNIST lays out its digits: light ink on black (a light page is inverted), cropped to the
    ink, scaled into a 20x20 box and centred by its centre of mass in a 28x28 frame. None for a blank image."""
    if gray.max() - gray.min() < 16:
        return None
    if np.median(gray) > 127:  # dark ink on a light page
        gray = 255 - gray
    gray = np.clip(gray - np.median(gray), 0, None)  # the background becomes 0
    ink = gray > 0.25 * gray.max()
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = MNIST_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(PIL.Image.fromarray((crop * 255 / crop.max()).astype(np.uint8)).resize(size, PIL.Image.LANCZOS))
    frame = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float64)
    top, left = (MNIST_SIDE - digit.shape[0]) // 2, (MNIST_SIDE - digit.shape[1]) // 2
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    mass = frame.sum()
    centre_y = (frame.sum(axis=1) * np.arange(MNIST_SIDE)).sum() / mass
    centre_x = (frame.sum(axis=0) * np.arange(MNIST_SIDE)).sum() / mass
    shift_y = int(np.clip(round((MNIST_SIDE - 1) / 2 - centre_y), -top, MNIST_SIDE - top - digit.shape[0]))
    shift_x = int(np.clip(round((MNIST_SIDE - 1) / 2 - centre_x), -left, MNIST_SIDE - left - digit.shape[1]))
    frame = np.roll(frame, (shift_y, shift_x), axis=(0, 1))
    return PIL.Image.fromarray(frame.astype(np.uint8), mode="L")


def open_upload(path: str) -> tuple[PIL.Image.Image | None, str | None]:
    """An uploaded file as a decoded PIL image no larger than 1024 px a side, or None and the reason."""
    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            image = PIL.Image.open(path)
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            return None, f"`{name}` is {image.width:,} x {image.height:,} pixels: too large (at most {MAX_UPLOAD_PIXELS:,} pixels)."
        image.draft(image.mode, (1024, 1024))  # JPEG: decode at a reduced scale
        image.load()
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as error:
        return None, f"`{name}` is too large to decode: {error}"
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return None, f"`{name}` is not an image that can be read: {error}"
    if max(image.size) > 1024:
        image.thumbnail((1024, 1024))
    return image, None


def sketch_image(sketch) -> PIL.Image.Image | None:
    """The sketchpad's picture (its composite of background and strokes), or None when nothing was sent."""
    if sketch is None:
        return None
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    return composite


def rollout_picture(vit, digit: PIL.Image.Image) -> PIL.Image.Image | None:
    """The ViT's attention rollout (CLS token -> patches) laid over ``digit`` as a heat colour map, 280 px a side;
    None when the model forms no attention matrices to roll out (performer attention)."""
    config = vit.model.config
    if getattr(config, "attention_type", "softmax") != "softmax":
        return None
    inputs = vit.image_processor(digit, return_tensors="pt")
    with torch.no_grad():
        outputs = vit.model(**inputs, output_attentions=True)
    grid = config.image_size // config.patch_size
    attention_map = attention_rollout(tuple(outputs.attentions), grid, grid)[0].numpy()
    side = 280
    heat = PIL.Image.fromarray(np.uint8(255 * attention_map)).resize((side, side), PIL.Image.BILINEAR)
    heat_rgb = matplotlib.colormaps["jet"](np.asarray(heat) / 255.0)[..., :3]
    digit_rgb = np.asarray(digit.resize((side, side), PIL.Image.NEAREST).convert("RGB")) / 255.0
    return PIL.Image.fromarray(np.uint8(255 * (0.55 * digit_rgb + 0.45 * heat_rgb)))


def read_digit(models: dict[str, Loaded], image: PIL.Image.Image | None, what: str):
    """-> (one {label: score} per reader, the 28x28 digit the models see, the ViT's rollout over it, message)."""
    nothing = (None,) * len(DIGIT_READERS)
    readers = {name: models[key] for name, key in DIGIT_READERS.items()}
    available = {name: loaded for name, loaded in readers.items() if loaded.pipe is not None}
    problems = [loaded.problem for loaded in readers.values() if loaded.problem]
    if not available:
        return (*nothing, None, None, " ".join(problems))
    if image is None:
        return (*nothing, None, None, f"The {what} is empty: draw a digit, or upload a picture of one.")
    gray = grayscale(image, next(iter(available.values())).pipe.image_processor)
    digit = frame_digit(gray)
    if digit is None:
        return (*nothing, None, None, f"The {what} is blank (one flat colour): draw a digit, or upload a picture of one.")
    scores = tuple(
        {s["label"]: s["score"] for s in readers[name].pipe(digit, top_k=3)} if name in available else None
        for name in DIGIT_READERS
    )
    rollout = rollout_picture(available["ViT"].pipe, digit) if "ViT" in available else None
    return (*scores, digit.resize((140, 140), PIL.Image.NEAREST), rollout, " ".join(problems))


# ---------------------------------------------------------------------------------------------- the page


def missing_note(models: dict[str, Loaded], keys) -> str:
    return "\n\n".join(f"⚠️ {models[key].problem}" for key in keys if models[key].problem)


def build_app(models: dict[str, Loaded]) -> gr.Blocks:
    with gr.Blocks(title="hf_models demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# hf_models: classic architectures as Hugging Face models\n"
            "Each tab loads its models with `pipeline(..., trust_remote_code=True)` from saved folders."
        )
        with gr.Tab("Translate", id="translate"):
            gr.Markdown(missing_note(models, TRANSLATORS.values()))
            choices = [name for name, key in TRANSLATORS.items() if models[key].pipe is not None]
            with gr.Row():
                with gr.Column():
                    english = gr.Textbox(label="English", lines=3, placeholder="Type an English sentence")
                    model_name = gr.Radio(choices, value=choices[0] if choices else None, label="Model")
                    num_beams = gr.Slider(1, 8, value=4, step=1, label="Beam size")
                    max_new_tokens = gr.Slider(1, 128, value=48, step=1, label="Max length (new tokens)")
                    translate_button = gr.Button("Translate", variant="primary")
                    gr.Examples(EXAMPLE_SENTENCES, inputs=english)
                with gr.Column():
                    chinese = gr.Textbox(label="Chinese", lines=3, interactive=False, elem_id="translation")
                    translate_message = gr.Markdown(elem_id="translate-message")
                    heatmap = gr.Plot(
                        label="Cross-attention (last decoder layer, mean over heads)", format="png", elem_id="heatmap"
                    )
            translate_handler = shows_errors("", None)(functools.partial(translate, models))
            translate_inputs = [english, model_name, num_beams, max_new_tokens]
            translate_outputs = [chinese, heatmap, translate_message]
            translate_button.click(translate_handler, translate_inputs, translate_outputs)
            english.submit(translate_handler, translate_inputs, translate_outputs)

        with gr.Tab("Classify a headline", id="classify"):
            gr.Markdown(missing_note(models, ["text_classifier"]))
            with gr.Row():
                with gr.Column():
                    headline = gr.Textbox(label="Chinese headline", lines=2, placeholder="输入一条新闻标题")
                    classify_button = gr.Button("Classify", variant="primary")
                with gr.Column():
                    classes = gr.Label(num_top_classes=10, label="Classes (THUCNews)", elem_id="classes")
                    classify_message = gr.Markdown(elem_id="classify-message")
            classify_handler = shows_errors(None)(functools.partial(classify, models))
            classify_button.click(classify_handler, headline, [classes, classify_message])
            headline.submit(classify_handler, headline, [classes, classify_message])
            gr.Examples(
                EXAMPLE_HEADLINES, inputs=headline, outputs=[classes, classify_message], fn=classify_handler,
                run_on_click=True, cache_examples=False, label="Example headlines (click one)",
            )

        with gr.Tab("Read a digit", id="digits"):
            gr.Markdown(missing_note(models, DIGIT_READERS.values()))
            with gr.Row():
                with gr.Column():
                    sketch = gr.Sketchpad(
                        label="Draw a digit", type="pil", canvas_size=(280, 280),
                        brush=gr.Brush(colors=["#000000"], default_size=18, color_mode="fixed"), layers=False,
                        transforms=(), elem_id="sketch",
                    )
                    sketch_button = gr.Button("Read the sketch", variant="primary")
                with gr.Column():
                    upload = gr.File(label="…or upload a picture of a digit", type="filepath", elem_id="digit-upload")
                    seen = gr.Image(label="What the models see (28 x 28)", interactive=False, height=160)
            digit_message = gr.Markdown(elem_id="digit-message")
            with gr.Row():
                scores = [gr.Label(num_top_classes=3, label=name, elem_id=f"digit-{name.lower()}") for name in DIGIT_READERS]
            rollout = gr.Image(
                label="ViT attention rollout (Abnar & Zuidema 2020): where the CLS token looks", interactive=False,
                height=300, elem_id="rollout",
            )
            digit_outputs = [*scores, seen, rollout, digit_message]
            fallback = (None,) * (len(digit_outputs) - 1)

            def read_sketch(value):
                return read_digit(models, sketch_image(value), "sketch")

            def read_upload(path):
                if path is None:
                    return read_digit(models, None, "upload")
                image, problem = open_upload(path)
                return fallback + (problem,) if problem else read_digit(models, image, "upload")

            sketch_button.click(shows_errors(*fallback)(read_sketch), sketch, digit_outputs)
            upload.upload(shows_errors(*fallback)(read_upload), upload, digit_outputs)
    return app


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models_dir", default=os.environ.get("APP_MODELS_DIR", "outputs"),
        help="where the default model folders are (those `make demo` writes); env APP_MODELS_DIR",
    )
    for option, (variable, folder, what) in MODEL_OPTIONS.items():
        parser.add_argument(
            f"--{option}", default=os.environ.get(variable),
            help=f"the {what}: a folder or Hub repo id (env {variable}; default MODELS_DIR/{folder})",
        )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    models = load_models(args)
    for name, loaded in models.items():
        logger.info("%s: %s", name, loaded.problem or f"loaded from {loaded.source}")
    build_app(models).queue().launch(
        server_name=args.host, server_port=args.port, share=False, show_error=False, theme=THEME, css=CJK_FONT_CSS,
        allowed_paths=[str(CJK_FONT)],
    )


if __name__ == "__main__":
    main()
