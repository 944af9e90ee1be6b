"""Speed of our Transformer against transformers' MarianMTModel, the reference encoder-decoder of the same shape.

Both models get the same sizes, vocabulary, dropout, activation, tied shared embeddings, sinusoidal positions,
embedding scaling, post-LN layout and attention backend, and random weights. Two workloads, measured in ONE process
with the repetitions of the two models interleaved (ours, Marian, Marian, ours, ...) so that load from other
processes on a shared machine hits both alike:

* training step: forward + backward + ``torch.optim.AdamW`` step on a padded batch; target tokens per second;
* greedy generation with the key/value cache: ``generate(num_beams=1, do_sample=False)`` with
  ``min_new_tokens == max_new_tokens`` so both models produce exactly the same number of tokens; generated tokens
  per second (the encoder pass is included, as in real use).

Every figure is a median over repetitions after warm-up, timed by two clocks (wall and this process's CPU time), and
the headline is the ratio ours / Marian (target >= 1.0): absolute numbers move with the machine's load, ratios much
less. Prints one JSON object to stdout.

    .venv/bin/python benchmarks/bench_translation_speed.py            # d_model 512, 6+6 layers, batch 32 x 24
    .venv/bin/python benchmarks/bench_translation_speed.py --quick    # tiny sizes, a few seconds
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import torch
import transformers
from transformers import GenerationConfig, MarianConfig, MarianMTModel

from hf_models import TransformerConfig, TransformerForConditionalGeneration

PAD, BOS, EOS = 0, 1, 2
QUICK_SIZES = dict(
    d_model=32, layers=2, heads=4, ffn=64, vocab=128, batch=4, src_len=8, tgt_len=8, gen_tokens=6,
    train_reps=2, gen_reps=2, warmup=1, threads=1,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6, help="encoder layers = decoder layers")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ffn", type=int, default=2048, help="inner size of the feed-forward network")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--activation", default="relu", choices=["relu", "gelu"], help="FFN activation of both")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--src-len", type=int, default=24, help="longest source sentence in the batch (tokens)")
    parser.add_argument("--tgt-len", type=int, default=24, help="longest target sentence in the batch (tokens)")
    parser.add_argument(
        "--fixed-lengths",
        action="store_true",
        help="every sentence exactly --src-len / --tgt-len long (default: lengths drawn from [len/2, len], padded)",
    )
    parser.add_argument("--gen-tokens", type=int, default=24, help="tokens generated per sentence")
    parser.add_argument("--train-reps", type=int, default=10)
    parser.add_argument("--gen-reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions of each workload per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice). On a busy machine, 1 avoids OpenMP threads waiting "
        "for each other and gives steadier ratios",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, two repetitions, one thread: a smoke run of seconds (overrides the size options)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK_SIZES.items():
            setattr(args, name, value)
    if args.train_reps < 1 or args.gen_reps < 1:
        parser.error("--train-reps and --gen-reps must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def build_models(args) -> dict[str, torch.nn.Module]:
    """Ours and Marian with identical shapes. Marian's config defaults differ from the paper (gelu, no scaling,
    pad 58100, forced EOS), so every field that matters is set explicitly on both."""
    shared = dict(
        vocab_size=args.vocab,
        encoder_layers=args.layers,
        decoder_layers=args.layers,
        activation_function=args.activation,
        dropout=args.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_position_embeddings=512,
        scale_embedding=True,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
    )
    ours_config = TransformerConfig(
        hidden_size=args.d_model,
        num_attention_heads=args.heads,
        intermediate_size=args.ffn,
        pre_layer_norm=False,
        share_embeddings=True,
        bos_token_id=BOS,
        **shared,
    )
    marian_config = MarianConfig(
        d_model=args.d_model,
        encoder_attention_heads=args.heads,
        decoder_attention_heads=args.heads,
        encoder_ffn_dim=args.ffn,
        decoder_ffn_dim=args.ffn,
        share_encoder_decoder_embeddings=True,
        forced_eos_token_id=None,
        **shared,
    )
    torch.manual_seed(args.seed)
    ours = TransformerForConditionalGeneration._from_config(ours_config, attn_implementation=args.attn_implementation)
    torch.manual_seed(args.seed)
    marian = MarianMTModel._from_config(marian_config, attn_implementation=args.attn_implementation)
    return {"ours": ours, "marian": marian}


def make_batch(args) -> dict[str, torch.Tensor]:
    """Random token ids (never PAD/BOS/EOS) padded to the longest sentence; labels use -100 on padding."""
    generator = torch.Generator().manual_seed(args.seed)

    def lengths(longest: int) -> torch.Tensor:
        if args.fixed_lengths:
            return torch.full((args.batch,), longest)
        return torch.randint((longest + 1) // 2, longest + 1, (args.batch,), generator=generator)

    def padded(longest: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(3, args.vocab, (args.batch, longest), generator=generator)
        mask = torch.arange(longest)[None, :] < lengths(longest)[:, None]
        return ids.masked_fill(~mask, PAD), mask.long()

    input_ids, attention_mask = padded(args.src_len)
    labels, label_mask = padded(args.tgt_len)
    labels = labels.masked_fill(label_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Tied tensors are counted once (``parameters()`` de-duplicates); buffers are not parameters."""
    parameters = list(model.parameters())
    return {
        "total": sum(p.numel() for p in parameters),
        "trainable": sum(p.numel() for p in parameters if p.requires_grad),
    }


# Wall-clock time is what a user waits; CPU time (of this process, all threads) is what the model costs and moves far
# less when other processes compete for the cores. On a shared machine, with --threads 1, trust the CPU-time ratio.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn) -> dict[str, float]:
    start = {clock: read() for clock, read in CLOCKS.items()}
    fn()
    return {clock: read() - start[clock] for clock, read in CLOCKS.items()}


def interleaved_seconds(workloads: dict[str, callable], reps: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Run every workload ``warmup`` times untimed, then ``reps`` timed times each, alternating which model goes
    first in every round so neither always runs right after the other. Returns ``{clock: {model: seconds}}``."""
    names = list(workloads)
    for _ in range(warmup):
        for name in names:
            workloads[name]()
    seconds = {clock: {name: [] for name in names} for clock in CLOCKS}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            for clock, elapsed in timed(workloads[name]).items():
                seconds[clock][name].append(elapsed)
    return seconds


def training_step(model, optimizer, batch):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()

    return step


def generation_run(model, batch, generation_config):
    def run():
        output = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], generation_config=generation_config
        )
        expected = generation_config.max_new_tokens + 1  # + the decoder start token
        if output.shape != (batch["input_ids"].size(0), expected):
            name = type(model).__name__
            raise RuntimeError(f"{name} generated shape {tuple(output.shape)}, expected length {expected}")

    return run


def summarise(seconds: dict[str, dict[str, list[float]]], tokens: int) -> dict:
    """Per clock: median tokens per second of each model, the ratio of the medians, and the spread (quartiles) of
    the per-round paired ratios, which shows how much the machine's load moved the figures."""
    summary = {"tokens_per_rep": tokens, "reps": len(seconds["wall"]["ours"])}
    for clock, per_model in seconds.items():
        rates = {name: [tokens / s for s in values] for name, values in per_model.items()}
        paired = [o / m for o, m in zip(rates["ours"], rates["marian"])]
        quartiles = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) > 1 else paired * 3
        ours, marian = statistics.median(rates["ours"]), statistics.median(rates["marian"])
        summary[clock] = {
            "ours_tokens_per_s": round(ours, 1),
            "marian_tokens_per_s": round(marian, 1),
            "ratio_ours_over_marian": round(ours / marian, 3),
            "paired_ratio_quartiles": [round(q, 3) for q in quartiles],
        }
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    models = build_models(args)
    batch = make_batch(args)

    for model in models.values():
        model.train()
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}
    train_seconds = interleaved_seconds(
        {name: training_step(model, optimizers[name], batch) for name, model in models.items()},
        args.train_reps,
        args.warmup,
    )

    generation_config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=args.gen_tokens,
        min_new_tokens=args.gen_tokens,
        use_cache=True,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
    )
    for model in models.values():
        model.eval()
    gen_seconds = interleaved_seconds(
        {name: generation_run(model, batch, generation_config) for name, model in models.items()},
        args.gen_reps,
        args.warmup,
    )

    result = {
        "benchmark": "translation_speed",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "sizes": {
            "d_model": args.d_model,
            "encoder_layers": args.layers,
            "decoder_layers": args.layers,
            "heads": args.heads,
            "ffn": args.ffn,
            "vocab": args.vocab,
            "activation": args.activation,
            "dropout": args.dropout,
            "attn_implementation": args.attn_implementation,
            "batch": args.batch,
            "src_len": args.src_len,
            "tgt_len": args.tgt_len,
            "fixed_lengths": args.fixed_lengths,
            "gen_tokens": args.gen_tokens,
            "quick": args.quick,
        },
        "parameters": {name: count_parameters(model) for name, model in models.items()},
        "train": summarise(train_seconds, int((batch["labels"] != -100).sum())),
        "generate": summarise(gen_seconds, args.batch * args.gen_tokens),
        "target_ratio": 1.0,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
