"""Structured pruning: heads and MLP units removed by importance, recorded in the config, reloaded anywhere."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from vision_testing import tiny_classifier

from hf_models import (
    ClassificationImageProcessor,
    TransformerConfig,
    TransformerForConditionalGeneration,
    TransformerForSequenceClassification,
)
from hf_models.pruning import head_importance, mlp_unit_importance, prune, prune_heads

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def image_batches(count=2, batch_size=4):
    generator = torch.Generator().manual_seed(0)
    return [
        {"pixel_values": torch.randn(batch_size, 1, 16, 16, generator=generator), "labels": torch.arange(batch_size) % 3}
        for _ in range(count)
    ]


def text_batches(vocab_size, seq2seq=False, count=2):
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        input_ids = torch.randint(4, vocab_size, (3, 6), generator=generator)
        labels = torch.randint(4, vocab_size, (3, 5), generator=generator) if seq2seq else torch.tensor([0, 1, 2])
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels})
    return batches


def tiny_transformer(model_class, **overrides):
    torch.manual_seed(0)
    sizes = dict(vocab_size=24, hidden_size=16, num_attention_heads=4, intermediate_size=32, encoder_layers=2,
                 decoder_layers=2, max_position_embeddings=16, dropout=0.0, num_labels=3)  # fmt: skip
    return model_class(TransformerConfig(**{**sizes, **overrides})).eval()


def test_pruned_vit_has_the_requested_shapes_and_config():
    model = tiny_classifier("vit", num_attention_heads=4)
    report = prune(model, image_batches(), head_fraction=0.5, mlp_fraction=0.25)
    for layer in model.vit.layers:
        assert layer.token_mixer.num_heads == 2 and layer.token_mixer.head_dim == 4  # head_dim is kept
        assert layer.token_mixer.in_proj.weight.shape == (3 * 2 * 4, 16)
        assert layer.token_mixer.out_proj.weight.shape == (16, 8)
        assert layer.mlp.fc1.out_features == 24 and layer.mlp.fc2.in_features == 24
    assert model.config.num_attention_heads_per_layer == [2, 2]
    assert model.config.intermediate_size_per_layer == [24, 24]
    assert report["parameters_after"] < report["parameters_before"]
    assert all(len(heads) == 2 for heads in report["removed_heads"].values())


def test_unpruned_configs_serialise_without_per_layer_fields():
    for config in (tiny_classifier("vit").config, tiny_classifier("gfnet").config, TransformerConfig()):
        assert "_per_layer" not in config.to_json_string()


def test_head_importance_ranks_an_irrelevant_head_last():
    model = tiny_classifier("vit", num_attention_heads=4)
    attention = model.vit.layers[1].token_mixer
    with torch.no_grad():
        attention.out_proj.weight[:, 2 * 4 : 3 * 4] = 0  # head 2's output reaches nothing
    scores = head_importance(model, image_batches())["vit.layers.1.token_mixer"]
    assert scores[2] == 0 and scores.argsort()[0] == 2 and (scores[[0, 1, 3]] > 0).all()
    assert prune(model, image_batches(), head_fraction=0.25)["removed_heads"]["vit.layers.1.token_mixer"] == [2]


def test_mlp_importance_by_taylor_and_l1_ranks_a_dead_unit_last():
    model = tiny_classifier("gfnet")
    with torch.no_grad():
        model.gfnet.encoder.layers[0].mlp.fc2.weight[:, 5] = 0  # unit 5 reaches nothing
        model.gfnet.encoder.layers[0].mlp.fc1.weight[5] = 0
    for method in ("taylor", "l1"):
        scores = mlp_unit_importance(model, image_batches(), method)["gfnet.encoder.layers.0.mlp"]
        assert scores.argsort()[0] == 5, method


def test_bad_pruning_requests_fail_clearly():
    model = tiny_classifier("vit", num_attention_heads=2)
    with pytest.raises(ValueError, match=r"vit.layers.0.token_mixer: removing 2 of its 2 heads would leave none"):
        prune_heads(model, {"vit.layers.0.token_mixer": [0, 1]})
    for fraction in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"head_fraction must be in \[0, 1\)"):
            prune(model, image_batches(), head_fraction=fraction)
    with pytest.raises(ValueError, match="GFNetForImageClassification has no attention heads to prune"):
        prune(tiny_classifier("gfnet"), image_batches(), head_fraction=0.5)
    with pytest.raises(ValueError, match="calibration batches need labels"):
        prune(model, [{"pixel_values": torch.randn(2, 1, 16, 16)}], head_fraction=0.5)
    with pytest.raises(ValueError, match=r"num_attention_heads_per_layer must be None or a list of 2 sizes"):
        tiny_classifier("vit", num_attention_heads_per_layer=[1])
    with pytest.raises(ValueError, match=r"num_attention_heads_per_layer\[1\] = 3 exceeds 2"):
        tiny_classifier("vit", num_attention_heads_per_layer=[1, 3])


# Loads every pruned folder with the Auto classes and trust_remote_code=True where hf_models cannot be imported.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_models"] = None
    import torch, transformers
    results = {}
    for job in json.load(open("jobs.json")):
        auto = getattr(transformers, job["auto"])
        model = auto.from_pretrained(job["folder"], trust_remote_code=True).eval()
        inputs = torch.load(job["folder"] + "/inputs.pt")
        with torch.no_grad():
            if job["auto"] == "AutoModelForSeq2SeqLM":
                result = model.generate(**inputs, max_new_tokens=5, do_sample=False).tolist()
            else:
                result = model(**inputs).logits.tolist()
        results[job["folder"]] = result
        if job["auto"] == "AutoModelForImageClassification":
            classify = transformers.pipeline("image-classification", model=job["folder"], trust_remote_code=True)
            results[job["folder"] + ":pipeline"] = classify(inputs["pixel_values"][0, 0].mul(127).add(128).byte().numpy())
    json.dump(results, open("results.json", "w"))
    """
)


@pytest.mark.slow
def test_pruned_models_reload_in_a_fresh_process_without_the_package(tmp_path):
    """ViT (heads + MLP), GFNet (MLP), the text classifier and the translator (encoder, decoder self- and
    cross-attention heads + FFNs): pruned, saved, reloaded elsewhere with identical logits / greedy tokens."""
    vit, gfnet = tiny_classifier("vit", num_attention_heads=4), tiny_classifier("gfnet")
    classifier = tiny_transformer(TransformerForSequenceClassification, decoder_layers=0)
    translator = tiny_transformer(TransformerForConditionalGeneration)
    cases = [
        (vit, image_batches(), 0.5, "AutoModelForImageClassification"),
        (gfnet, image_batches(), 0.0, "AutoModelForImageClassification"),
        (classifier, text_batches(24), 0.5, "AutoModelForSequenceClassification"),
        (translator, text_batches(24, seq2seq=True), 0.5, "AutoModelForSeq2SeqLM"),
    ]
    jobs, expected = [], {}
    for index, (model, batches, head_fraction, auto) in enumerate(cases):
        prune(model, batches, head_fraction=head_fraction, mlp_fraction=0.5)
        folder = str(tmp_path / f"model{index}")
        model.save_pretrained(folder)
        inputs = {key: value for key, value in batches[0].items() if key != "labels"}
        torch.save(inputs, folder + "/inputs.pt")
        with torch.no_grad():
            if auto == "AutoModelForSeq2SeqLM":
                expected[folder] = model.generate(**inputs, max_new_tokens=5, do_sample=False).tolist()
            else:
                expected[folder] = model(**inputs).logits.tolist()
        if auto == "AutoModelForImageClassification":
            ClassificationImageProcessor(
                size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.5], image_std=[0.5]
            ).save_pretrained(folder)
        jobs.append({"folder": folder, "auto": auto})
    assert translator.config.cross_attention_heads_per_layer == [2, 2]
    assert classifier.config.encoder_intermediate_size_per_layer == [16, 16]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for folder, values in expected.items():
        assert results[folder] == values, folder  # bit-identical
    assert results[jobs[0]["folder"] + ":pipeline"][0]["label"] in {"zero", "one", "two"}
