"""Load a trained digit classifier through pipeline("image-classification"), print its measured test accuracy,
classify a few test-split digits (top 3 classes each) plus a 1x1 image and an RGB photo-sized image, and say where
the pictures the recipe drew are.

    python recipes/demo_image_classification.py outputs/demo_image_classification_vit
"""

import argparse
import json
from pathlib import Path

import PIL.Image
from transformers import pipeline

from mnist_data import DEFAULT_DATA_DIR, load_mnist, split_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", type=Path, nargs="+")
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--count", type=int, default=5, help="test digits to classify")
    args = parser.parse_args()
    test = split_mnist(load_mnist(args.data_dir))["test"].select(range(args.count))
    images = list(test["image"]) + [PIL.Image.new("L", (1, 1), 0), PIL.Image.new("RGB", (4000, 3000), (20, 20, 20))]
    names = [f"test digit {label}" for label in test["label"]] + ["1x1 black image", "4000x3000 dark RGB image"]
    for model_dir in args.model_dirs:
        classifier = pipeline("image-classification", model=str(model_dir), trust_remote_code=True)
        results = json.loads((model_dir / "results.json").read_text())
        print(f"\n== {model_dir} ({type(classifier.model).__name__}, {classifier.model.num_parameters():,} parameters)")
        print(f"   test accuracy {results['accuracy (%)']:.2f} % on the 2,000-image test split (see README.md)")
        for name, scores in zip(names, classifier(images, top_k=3)):
            print(f"   {name}: " + ", ".join(f"{score['label']} {score['score']:.2f}" for score in scores))
        for picture in ("confusion_matrix.png", "attention_rollout.png"):
            if (model_dir / picture).exists():
                print(f"   {picture}: {model_dir / picture}")


if __name__ == "__main__":
    main()
