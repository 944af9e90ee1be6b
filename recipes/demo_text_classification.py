"""Load a trained headline classifier through pipeline("text-classification"), print its measured test scores and
classify a few headlines (top 3 classes each), including an empty, an emoji-only and an over-long input.

    python recipes/demo_text_classification.py outputs/demo_text_classification
"""

import argparse
import json
from pathlib import Path

from transformers import pipeline

HEADLINES = [
    "央行宣布下调存款准备金率0.5个百分点",
    "湖人加时险胜凯尔特人 科比独得40分",
    "北京四环内新盘均价突破每平米4万元",
    "《魔兽世界》新资料片今日开放测试",
    "教育部：明年高考报名人数预计再创新高",
    "",
    "😀",
    "长" * 5000,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--texts", nargs="*", default=HEADLINES)
    args = parser.parse_args()
    classifier = pipeline("text-classification", model=str(args.model_dir), trust_remote_code=True)
    results = json.loads((args.model_dir / "results.json").read_text())
    print(f"\n== {args.model_dir} ({classifier.model.num_parameters():,} parameters)")
    print(f"   test accuracy {results['accuracy (%)']:.2f} %, macro-F1 {results['macro-F1 (%)']:.2f} % on its test split (see README.md)")
    for text, scores in zip(args.texts, classifier(args.texts, top_k=3)):
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
        print(f"   {shown!r}: " + ", ".join(f"{score['label']} {score['score']:.2f}" for score in scores))
    print(f"   confusion matrix of the test split: {args.model_dir / 'confusion_matrix.png'}")


if __name__ == "__main__":
    main()
