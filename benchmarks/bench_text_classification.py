"""Quality of the published headline classifier on THUCNews: train the `base` recipe, the same recipe with zero
encoder layers (the bag-of-embeddings baseline: embedding + positions + mean + linear) and, when scikit-learn is
installed, the classical reference (TF-IDF of character 1-3-grams + LinearSVC, C=0.5); print test accuracy, macro-F1,
training time and parameters as JSON, next to the targets of the issue.

    python benchmarks/bench_text_classification.py                      # all three (the two trainings take minutes each)
    python benchmarks/bench_text_classification.py --runs base tfidf_linearsvc --threads 1
    python benchmarks/bench_text_classification.py --report_only        # read the outputs/ of earlier runs

Each recipe run is `accelerate launch recipes/train_text_classification.py --args_file
recipes/published/text_classification_base.args` (plus `--config_overrides encoder_layers=0,pre_layer_norm=false`
and its own output folder for the baseline) with `--threads` OpenMP threads. All models train on
train_first33590.txt, select on dev.txt and are scored on test.txt (10,000 headlines).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes"))  # recipes/ is a script folder, not a package

from thucnews_data import DEFAULT_DATA_DIR, load_thucnews  # noqa: E402

ARGS_FILE = ROOT / "recipes" / "published" / "text_classification_base.args"
RECIPE_RUNS = {
    "base": [],
    "zero_layer": ["--config_overrides", "encoder_layers=0,pre_layer_norm=false", "--output_dir", "outputs/text_classification_zero_layer"],
}
RUNS = (*RECIPE_RUNS, "tfidf_linearsvc")
TARGET_ACCURACY = 89.91  # %, 649453932/Chinese-Text-Classification-Pytorch's Transformer trained on all 180,000 lines
TFIDF_REFERENCE_ACCURACY = 89.73  # %, the figure for the same TF-IDF + LinearSVC on the 33,590 lines
TIME_LIMIT_MINUTES = 30


def output_dir(run: str) -> Path:
    tokens = ARGS_FILE.read_text().split() + RECIPE_RUNS[run]
    last = max(index for index, token in enumerate(tokens) if token == "--output_dir")  # the command line's wins
    return ROOT / tokens[last + 1]


def train(run: str, threads: int) -> float:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "recipes" / "train_text_classification.py"), "--args_file", str(ARGS_FILE), *RECIPE_RUNS[run],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=sys.stderr)  # stdout carries only the JSON
    return time.perf_counter() - start


def report_recipe(run: str, wall_seconds: float | None) -> dict:
    results = json.loads((output_dir(run) / "all_results.json").read_text())
    return {
        "run": run,
        "test_accuracy": round(100 * results["test_accuracy"], 2),
        "test_macro_f1": round(100 * results["test_macro_f1"], 2),
        "validation_accuracy": round(100 * results["validation_accuracy"], 2),
        "training_minutes": round(results["training_seconds"] / 60, 1),
        "wall_minutes_including_evaluation": None if wall_seconds is None else round(wall_seconds / 60, 1),
        "within_time_limit": results["training_seconds"] / 60 <= TIME_LIMIT_MINUTES,
        "beats_target": 100 * results["test_accuracy"] > TARGET_ACCURACY,
        "num_parameters": json.loads((output_dir(run) / "results.json").read_text())["num_parameters"],
        "output_dir": str(output_dir(run).relative_to(ROOT)),
    }


def tfidf_linearsvc() -> dict:
    """The classical reference, trained and scored on the same files; needs scikit-learn (not a dependency).
    liblinear is single-threaded."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.svm import LinearSVC

    splits = load_thucnews(DEFAULT_DATA_DIR)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    classifier = LinearSVC(C=0.5).fit(vectorizer.fit_transform(splits["train"]["text"][:]), splits["train"]["label"][:])
    seconds = time.perf_counter() - start
    scores = {}
    for split in ("validation", "test"):
        predicted = classifier.predict(vectorizer.transform(splits[split]["text"][:]))
        references = splits[split]["label"][:]
        scores[split] = (accuracy_score(references, predicted), f1_score(references, predicted, average="macro"))
    return {
        "run": "tfidf_linearsvc",
        "test_accuracy": round(100 * scores["test"][0], 2),
        "test_macro_f1": round(100 * scores["test"][1], 2),
        "validation_accuracy": round(100 * scores["validation"][0], 2),
        "training_seconds": round(seconds, 1),
        "num_features": len(vectorizer.vocabulary_),
        "setup": "TfidfVectorizer(analyzer='char', ngram_range=(1, 3), sublinear_tf=True) + LinearSVC(C=0.5)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads per run (1 while others train)")
    parser.add_argument("--report_only", action="store_true", help="Do not train; read outputs/*/all_results.json.")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        if run == "tfidf_linearsvc":
            try:
                rows.append(tfidf_linearsvc())
            except ImportError as error:
                rows.append({"run": run, "skipped": f"scikit-learn is not installed ({error})"})
        else:
            rows.append(report_recipe(run, None if args.report_only else train(run, args.threads)))
    print(json.dumps(
        {
            "benchmark": "text_classification_thucnews",
            "test_headlines": 10000,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s) per run",
            "target_test_accuracy": TARGET_ACCURACY,
            "tfidf_reference_test_accuracy_of_the_issue": TFIDF_REFERENCE_ACCURACY,
            "time_limit_minutes": TIME_LIMIT_MINUTES,
            "results": rows,
        },
        indent=2,
    ))


if __name__ == "__main__":
    main()
