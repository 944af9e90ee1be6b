"""Train an image classifier (ViT, GFNet or AFNO) with Trainer: MNIST digits or your own image folders.

    accelerate launch recipes/train_image_classification.py --arch vit --model_size tiny --output_dir outputs/v
    accelerate launch recipes/train_image_classification.py --args_file recipes/published/image_classification_vit_base.args
    python recipes/train_image_classification.py --arch gfnet --train_dir my/train --validation_dir my/val \
        --num_channels 3 --output_dir outputs/mine

Every standard ``TrainingArguments`` flag works (``--num_train_epochs``, ``--learning_rate``, ``--eval_strategy``,
``--seed``, ``--use_cpu``, ...); flags given on the command line override those of an ``--args_file``.
``--model_name_or_path`` starts from a saved model instead of a named size (e.g. a transformers ViT converted with
``python -m hf_models.convert_vit_from_transformers``); its classifier is replaced when the labels differ.

Data: MNIST from ``--data_dir`` (the 10,000 t10k images, split 8,000 train / 2,000 test, stratified, by
``settings/mnist.json``; there is no validation split, so the schedule is fixed and the test split is scored once at
the end), or ``--train_dir/--validation_dir/--test_dir`` in ``imagefolder`` layout (``DIR/<class>/<image>``).
Training images get light augmentation for digits and glyphs: a small random rotation, scaling and shift, no flips
(a flipped 2 or 7 is not a digit). The processor normalises with the mean/std measured on the training images, or
with those saved next to the ``--model_name_or_path`` checkpoint (its weights expect them).

The output folder holds the model and its code, the image processor, the image-classification pipeline, a model card, ``results.json``, the test split's
``confusion_matrix.png`` and, for ViT, ``attention_rollout.png``.
"""

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, TrainingArguments

import hf_models
from hf_models.metrics import load_metric
from hf_models.pipeline_image_classification import save_for_image_classification
from mnist_data import DEFAULT_DATA_DIR, SETTINGS, load_image_folders, load_mnist, split_mnist
from model_card import DatasetInfo, portable
from plots import attention_rollout, plot_attention_rollout
from recipe_skeleton import TRAINING_HYPERPARAMETERS, ClassificationTask, Run, config_hyperparameters, training_hyperparameters, user_dataset
from recipe_skeleton import arch_argument, attn_implementation_argument, config_overrides_argument, data_dir_argument
from recipe_skeleton import model_size_argument, rdrop_alpha_argument, sample_limit_argument
from recipe_utils import ExampleRandomness, parse_config_overrides

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parent
MODEL_SIZES = json.loads((RECIPES / "settings" / "image_classification_models.json").read_text())
ARCHITECTURES = {
    "vit": (hf_models.VisionTransformerConfig, hf_models.VisionTransformerForImageClassification),
    "gfnet": (hf_models.GFNetConfig, hf_models.GFNetForImageClassification),
    "afno": (hf_models.AFNOConfig, hf_models.AFNOForImageClassification),
}
FAMILY_DESCRIPTIONS = {
    "vit": "Vision Transformer (Dosovitskiy et al. 2021): patch embedding, CLS token, learned positions, pre-LN "
    "multi-head self-attention blocks; the classifier reads the final CLS token.",
    "gfnet": "Global Filter Network (Rao et al. 2021): patch embedding and learned positions, blocks whose token mixer "
    "is a learned complex filter in the 2-D Fourier domain (rfft2 -> filter -> irfft2); mean-pooled classifier.",
    "afno": "Adaptive Fourier Neural Operator (Guibas et al. 2022): patch embedding and learned positions, blocks whose "
    "token mixer is a block-diagonal complex MLP over the Fourier modes with soft-thresholding; mean-pooled classifier.",
}
MNIST_INFO = DatasetInfo(
    name="MNIST test set (t10k, 10,000 images), LeCun, Cortes & Burges",
    id="mnist",
    split_description=(
        f"only the 10,000-image t10k set is available here; it is split {SETTINGS['train_size']:,} train / "
        f"{SETTINGS['test_size']:,} test, stratified by digit, seed {SETTINGS['seed']} (`recipes/settings/mnist.json`). "
        "Not comparable with results on the official 60,000/10,000 split."
    ),
    license="no licence stated by the source repository; commonly redistributed under CC BY-SA 3.0 (unconfirmed)",
    attribution="MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, http://yann.lecun.com/exdb/mnist/",
)


@dataclass
class ModelArguments:
    arch: str = arch_argument("vit", ARCHITECTURES)
    model_size: str = model_size_argument("tiny", "image_classification_models.json")
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from this saved model (and its processor's mean/std) instead of a named size."},
    )
    config_overrides: str | None = config_overrides_argument("drop_path_rate=0.1,attention_type=performer")
    attn_implementation: str = attn_implementation_argument("ViT")
    rdrop_alpha: float = rdrop_alpha_argument()


@dataclass
class DataArguments:
    data_dir: str = data_dir_argument(DEFAULT_DATA_DIR, "mnist/")
    train_dir: str | None = field(default=None, metadata={"help": "Training images, imagefolder layout."})
    validation_dir: str | None = field(default=None, metadata={"help": "Validation images, imagefolder layout."})
    test_dir: str | None = field(default=None, metadata={"help": "Test images, imagefolder layout."})
    num_channels: int | None = field(default=None, metadata={"help": "1 or 3. Default: 1 for MNIST, 3 for image folders."})
    augment: bool = field(default=True, metadata={"help": "Random rotation/scale/shift of training images."})
    max_rotation: float = field(default=10.0, metadata={"help": "Largest random rotation, degrees."})
    max_scale_change: float = field(default=0.1, metadata={"help": "Random scale in [1 - x, 1 + x]."})
    max_shift: float = field(default=0.1, metadata={"help": "Largest random shift, as a fraction of the image side."})
    max_train_samples: int | None = sample_limit_argument("training images")
    max_eval_samples: int | None = sample_limit_argument("validation images")
    max_test_samples: int | None = sample_limit_argument("test images")
    rollout_images: int = field(default=6, metadata={"help": "Test images in attention_rollout.png (ViT)."})


def load_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
    """The user's folders when given, else the MNIST split. Returns the splits and whether they are MNIST."""
    if data_args.train_dir or data_args.validation_dir or data_args.test_dir:
        return load_image_folders(data_args.train_dir, data_args.validation_dir, data_args.test_dir), False
    return split_mnist(load_mnist(data_args.data_dir)), True


def random_affine(image: PIL.Image.Image, rng: np.random.Generator, data_args: DataArguments) -> PIL.Image.Image:
    """Rotates by up to ``max_rotation`` degrees, scales by ``1 +- max_scale_change`` and shifts by up to
    ``max_shift`` of the side, about the image centre; uncovered pixels take the colour of the top-left pixel
    (the background, for digits and most scans)."""
    angle = math.radians(rng.uniform(-data_args.max_rotation, data_args.max_rotation))
    scale = rng.uniform(1 - data_args.max_scale_change, 1 + data_args.max_scale_change)
    width, height = image.size
    shift_x = rng.uniform(-data_args.max_shift, data_args.max_shift) * width
    shift_y = rng.uniform(-data_args.max_shift, data_args.max_shift) * height
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    # PIL maps each OUTPUT pixel to an input pixel, so it needs the inverse transform: undo shift, rotation, scale.
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    a, b, d, e = cos, sin, -sin, cos
    x, y = centre_x + shift_x, centre_y + shift_y
    c = centre_x - a * x - b * y
    f = centre_y - d * x - e * y
    return image.transform(
        image.size, PIL.Image.Transform.AFFINE, (a, b, c, d, e, f), resample=PIL.Image.Resampling.BILINEAR,
        fillcolor=image.getpixel((0, 0)),
    )


def measure_mean_std(split: datasets.Dataset, processor, max_images: int = 2000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (up to ``max_images``) training images after conversion, resizing and rescaling:
    what the processor must subtract and divide by. A channel that is constant over the sample (std below 1e-3)
    gets std 1: it carries no information, and dividing by ~0 would blow it up."""
    sample = split.select(range(min(max_images, len(split))))
    values = processor(list(sample["image"]), do_normalize=False, return_tensors="np").pixel_values.astype(np.float64)
    means = [round(mean, 4) for mean in values.mean(axis=(0, 2, 3)).tolist()]
    stds = [round(std, 4) if std >= 1e-3 else 1.0 for std in values.std(axis=(0, 2, 3)).tolist()]
    return means, stds


def build_model_and_processor(model_args: ModelArguments, data_args: DataArguments, splits, is_mnist: bool):
    label_names = next(iter(splits.values())).features["label"].names
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {name: i for i, name in enumerate(label_names)}}
    if model_args.model_name_or_path:
        config_class = type(AutoConfig.from_pretrained(model_args.model_name_or_path))
        overrides = parse_config_overrides(model_args.config_overrides, config_class)
        model = AutoModelForImageClassification.from_pretrained(
            model_args.model_name_or_path, num_labels=len(label_names), ignore_mismatched_sizes=True, **labels, **overrides
        )
    else:
        config_class, model_class = ARCHITECTURES[model_args.arch]
        sizes = MODEL_SIZES[model_args.arch]
        if model_args.model_size not in sizes:
            raise ValueError(f"--model_size {model_args.model_size!r} unknown for {model_args.arch}; choose from {sorted(sizes)}")
        num_channels = data_args.num_channels or (1 if is_mnist else 3)
        overrides = parse_config_overrides(model_args.config_overrides, config_class)
        model = model_class(config_class(**{**sizes[model_args.model_size], **overrides}, num_channels=num_channels, **labels))
    if model_args.arch == "vit" or isinstance(model, hf_models.VisionTransformerForImageClassification):
        model.config._attn_implementation = model_args.attn_implementation
    config = model.config
    if data_args.num_channels and data_args.num_channels != config.num_channels:
        raise ValueError(f"--num_channels {data_args.num_channels} but the model takes {config.num_channels} channels")
    processor = hf_models.ClassificationImageProcessor(
        size={"height": config.image_size, "width": config.image_size}, num_channels=config.num_channels
    )
    saved = saved_normalisation(model_args.model_name_or_path)
    if saved:
        # a pretrained model's weights expect the normalisation it was trained with, not the new data's statistics
        processor.image_mean, processor.image_std = saved
        logger.info("normalising with the mean %s and std %s saved with %s", *saved, model_args.model_name_or_path)
    else:
        train = splits.get("train", next(iter(splits.values())))
        processor.image_mean, processor.image_std = measure_mean_std(train, processor)
        logger.info("normalising with the training images' mean %s and std %s", processor.image_mean, processor.image_std)
    return model, processor


def saved_normalisation(model_name_or_path: str | None) -> tuple[list[float], list[float]] | None:
    """The mean and std of the image processor saved with a starting checkpoint (None without one)."""
    if not model_name_or_path:
        return None
    try:
        saved = AutoImageProcessor.from_pretrained(model_name_or_path)
    except OSError:  # no preprocessor_config.json: the checkpoint does not say how it normalised
        logger.warning("%s has no image processor: measuring the mean/std on the training images", model_name_or_path)
        return None
    if not getattr(saved, "do_normalize", False):
        return None
    return list(np.atleast_1d(saved.image_mean).tolist()), list(np.atleast_1d(saved.image_std).tolist())


def with_transforms(
    splits: datasets.DatasetDict, processor, data_args: DataArguments, randomness: ExampleRandomness | int
) -> datasets.DatasetDict:
    """Images -> ``pixel_values`` on the fly (training images augmented with draws from ``randomness``: seed, epoch
    and the image's pixels, so a resumed run augments like an uninterrupted one), labels -> ``labels``."""
    randomness = ExampleRandomness.of(randomness)

    def transform(batch, augment: bool):
        images = batch["image"]
        if augment:
            images = [random_affine(image, randomness.generator(image.tobytes()), data_args) for image in images]
        return {"pixel_values": list(processor(images, return_tensors="pt").pixel_values), "labels": batch["label"]}

    return datasets.DatasetDict(
        {
            name: split.with_transform(lambda batch, train=name == "train": transform(batch, train and data_args.augment))
            for name, split in splits.items()
        }
    )


def collate(examples: list[dict]) -> dict:
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.tensor([example["labels"] for example in examples]),
    }


def compute_metrics_fn():
    accuracy = load_metric("accuracy")

    def compute_metrics(prediction):
        return accuracy.compute(predictions=np.argmax(prediction.predictions, axis=-1), references=prediction.label_ids)

    return compute_metrics


def has_attention_rollout(model) -> bool:
    """Only a softmax-attention ViT gets ``attention_rollout.png``: the other families have no attention, and
    performer attention never forms the attention matrix that rollout multiplies."""
    return isinstance(model, hf_models.VisionTransformerForImageClassification) and model.config.attention_type == "softmax"


def save_attention_rollout(model, processor, test_split: datasets.Dataset, count: int, path: Path) -> None:
    """``attention_rollout.png`` for the first ``count`` test images: where the ViT's CLS token looks."""
    sample = test_split.select(range(min(count, len(test_split))))
    images, labels = list(sample["image"]), list(sample["label"])
    batch = processor(images, return_tensors="pt").to(model.device)
    model.eval()
    with torch.no_grad():
        outputs = model(**batch, output_attentions=True)
    grid = model.config.image_size // model.config.patch_size
    maps = attention_rollout(tuple(a.cpu() for a in outputs.attentions), grid, grid)
    predicted = outputs.logits.argmax(-1).tolist()
    names = model.config.id2label
    titles = [f"true {names[t]} / pred {names[p]}" for t, p in zip(labels, predicted)]
    plot_attention_rollout(images, maps, titles, path)


def family_of(config) -> str:
    """The ``--arch`` name of a config's family (``vit`` for ``hfm_vit``); a family the recipe does not list (one
    registered with ``hf_models.register_family`` and loaded with ``--model_name_or_path``) goes by its
    ``model_type``."""
    return next((arch for arch, (config_class, _) in ARCHITECTURES.items() if type(config) is config_class), config.model_type)


def family_description(model) -> str:
    """The card's sentence on the family: the recipe's own for the families it lists, else the first paragraph of the
    model class's docstring (or its name)."""
    arch = family_of(model.config)
    if arch in FAMILY_DESCRIPTIONS:
        return FAMILY_DESCRIPTIONS[arch]
    return (type(model).__doc__ or f"{type(model).__name__}.").strip().split("\n\n")[0]


class ImageClassificationTask(ClassificationTask):
    """The image recipe's hooks for the skeleton (recipes/recipe_skeleton.py)."""

    script = __file__
    logger = logger
    argument_classes = (ModelArguments, DataArguments, TrainingArguments)
    card_training_hyperparameters = tuple(name for name in TRAINING_HYPERPARAMETERS if name != "metric_for_best_model")

    def configure(self, run: Run) -> None:
        run.training_args.remove_unused_columns = False  # the "image" column is turned into pixel_values on the fly
        if run.training_args.eval_strategy != "no" and not run.data_args.validation_dir:
            raise ValueError(
                f"--eval_strategy {run.training_args.eval_strategy} needs a validation split: give --validation_dir "
                "(MNIST here has none: the test split is scored once, after training)"
            )

    def load_splits(self, data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
        return load_splits(data_args)

    def build(self, run: Run) -> None:
        run.model, run.processing_class = build_model_and_processor(run.model_args, run.data_args, run.splits, run.is_reference_corpus)
        run.randomness = ExampleRandomness(run.training_args.seed)
        run.datasets = with_transforms(run.splits, run.processing_class, run.data_args, run.randomness)
        run.data_collator, run.compute_metrics = collate, compute_metrics_fn()

    def model_name(self, run: Run) -> str:
        return f"{run.model_args.arch} {run.model_args.model_size}"

    def save(self, run: Run, model) -> None:
        # the model, its code, the image processor and the pipeline that keeps 16-bit and transparent images intact
        save_for_image_classification(model, run.processing_class, run.output_dir)

    def save_test_outputs(self, run: Run, model, test) -> None:
        super().save_test_outputs(run, model, test)
        if has_attention_rollout(model):
            save_attention_rollout(
                model, run.processing_class, run.splits["test"], run.data_args.rollout_images, run.output_dir / "attention_rollout.png"
            )

    def card_content(self, run: Run, model) -> dict:
        model_args, data_args, training_args, results = run.model_args, run.data_args, run.training_args, run.results
        is_mnist, processor, config = run.is_reference_corpus, run.processing_class, model.config
        architecture = (
            f"{family_description(model)} {config.num_hidden_layers} blocks of width {config.hidden_size}, "
            f"{config.image_size}x{config.image_size} {'grayscale' if config.num_channels == 1 else 'RGB'} input in "
            f"{config.patch_size}x{config.patch_size} patches, {config.num_labels} classes."
        )
        hyperparameters = {
            "model_size": model_args.model_size if not model_args.model_name_or_path else portable(model_args.model_name_or_path),
            **config_hyperparameters(config),
            "image_mean": processor.image_mean,
            "image_std": processor.image_std,
            "augment": data_args.augment,
            "rdrop_alpha": model_args.rdrop_alpha,
            **training_hyperparameters(training_args, self.card_training_hyperparameters),
        }
        usage = f"""from PIL import Image, ImageDraw
from transformers import pipeline

classifier = pipeline("image-classification", model="{run.model_location}", trust_remote_code=True)
image = Image.new("L", (28, 28))  # a white "1" on black, as in MNIST
ImageDraw.Draw(image).line([(14, 5), (14, 23)], fill=255, width=3)
print(classifier(image))  # or a path or URL; any size and colour mode is converted to the model's input"""
        extra = {}
        if "test_confusion_matrix" in results:
            extra["Pictures"] = "`confusion_matrix.png`: test split, rows are true classes, columns predicted ones." + (
                " `attention_rollout.png`: attention rollout of the CLS token over the patches for a few test images."
                if has_attention_rollout(model) else ""
            )
        return dict(
            task_type="image-classification",
            task_name="Image classification",
            architecture=architecture,
            dataset=MNIST_INFO if is_mnist else user_dataset(
                "user images", "imagefolder", "the images' source", data_args.train_dir, data_args.validation_dir, data_args.test_dir
            ),
            metrics=[("accuracy", "accuracy (%)", 100 * results["test_accuracy"])] if "test_accuracy" in results else [],
            hyperparameters=hyperparameters,
            usage=usage,
            limitations=(
                "Trained on 8,000 MNIST digits (centred white-on-black 28x28 handwriting): expect poor results on "
                "other kinds of images, on dark-on-light digits unless inverted, and on digits that are not centred. "
                "The test figure comes from 2,000 images carved from the MNIST test set, not the official split."
                if is_mnist else "Trained on the user's images; see their source for coverage and biases."
            ),
            tags=["image-classification", family_of(config), "vision"],
            extra_sections=extra,
        )


TASK = ImageClassificationTask()

main = TASK.main  # the run (recipe_skeleton.RecipeTask.main), for callers that import it


if __name__ == "__main__":
    main()
