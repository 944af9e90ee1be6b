"""Reload trained translation models through the Auto classes, translate a few sentences, print the measured test
scores, and draw a cross-attention heatmap (source tokens x generated tokens) for one sentence.

    python recipes/demo_translation.py outputs/demo_transformer outputs/demo_gru
"""

import argparse
import json
from pathlib import Path

import torch
from plots import cross_attention_figure, save_figure
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

SENTENCES = ["I love you.", "Where is the train station?", "He is reading a book.", "It's very cold today."]


def cross_attention(model, tokenizer, text: str) -> tuple[list[str], list[str], torch.Tensor]:
    """Greedy translation of ``text`` and the last decoder layer's cross-attention, averaged over heads:
    ``(generated tokens, source tokens, weights[generated, source])``."""
    inputs = tokenizer(text, return_tensors="pt")
    generated = model.generate(**inputs, num_beams=1, do_sample=False)
    with torch.no_grad():
        output = model(**inputs, decoder_input_ids=generated[:, :-1], output_attentions=True)
    weights = output.cross_attentions[-1][0].mean(0)  # (heads, target, source) -> (target, source)
    target_tokens = tokenizer.convert_ids_to_tokens(generated[0, 1:])
    source_tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    return target_tokens, source_tokens, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+", type=Path)
    parser.add_argument("--sentences", nargs="*", default=SENTENCES)
    args = parser.parse_args()
    for model_dir in args.model_dirs:
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)  # or it asks: config.json is custom
        translator = pipeline("translation", model=str(model_dir), trust_remote_code=True)
        results = json.loads((model_dir / "results.json").read_text())
        print(f"\n== {model_dir} ({type(model).__name__}, {model.num_parameters():,} parameters)")
        test_pairs = len((model_dir / "test_translations.jsonl").read_text(encoding="utf-8").splitlines())
        print(f"   test BLEU {results['BLEU']:.2f}, chrF {results['chrF']:.2f} on {test_pairs:,} held-out pairs")
        for sentence, result in zip(args.sentences, translator(args.sentences, num_beams=4)):
            print(f"   {sentence} -> {result['translation_text']}")
        target_tokens, source_tokens, weights = cross_attention(model, tokenizer, args.sentences[0])
        heatmap = model_dir / "cross_attention.png"
        figure = cross_attention_figure(weights.numpy(), source_tokens, target_tokens, f"{model_dir.name}: {args.sentences[0]}")
        save_figure(figure, heatmap)
        print(f"   cross-attention heatmap: {heatmap}")


if __name__ == "__main__":
    main()
