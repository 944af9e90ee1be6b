"""The translation pipeline: from a saved folder in a fresh process without hf_models, in-process, and on the edge
cases (empty, whitespace-only and over-long input, batches, several returned sequences, other seq2seq models)."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel, pipeline

from hf_models import TransformerForConditionalGeneration
from hf_models.pipeline_translation import TranslationPipeline

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

SOURCES = ["i like tea", "we drink water", "you like rice"]
TRANSLATIONS = ["我 喜 欢 茶", "我 们 喝 水", "你 喜 欢 米 饭"]

# Runs in a fresh interpreter where `import hf_models` fails, as on a machine that never installed the package
# (it is installed editable here, so it is blocked explicitly). Writes what it got to a .pt file for the test.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["hf_models"] = None
    try:
        import hf_models
    except ImportError:
        pass
    else:
        raise SystemExit("hf_models is importable: this run would not show that the folder is self-contained")

    import json

    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    folder, sources, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    translator = pipeline("translation", model=folder, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=batch["input_ids"]).logits
    torch.save(
        {
            "modules": [type(translator).__module__, type(model).__module__],
            "single": translator(sources[0]),
            "batch": translator(sources, batch_size=len(sources)),
            "max_new_tokens_2": translator(sources[0], max_new_tokens=2),
            "beams": translator(sources[0], num_beams=3, num_return_sequences=3),
            "input_ids": batch["input_ids"],
            "logits": logits,
        },
        output,
    )
    """
)


def generate_and_decode(model, tokenizer, sources, **generate_kwargs) -> list[str]:
    """The reference: what the pipeline should give, computed with the in-memory model."""
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        output_ids = model.generate(**batch, **generate_kwargs)
    return tokenizer.batch_decode(output_ids, skip_special_tokens=True)


def texts(results) -> list[str]:
    return [result["translation_text"] for result in results]


@pytest.fixture(scope="module")
def remote_results(tiny_transformer_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("remote_run")
    output = work_dir / "results.pt"
    env = {**os.environ, "HF_MODULES_CACHE": str(work_dir / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(tiny_transformer_dir), json.dumps(SOURCES), str(output)],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(output)


@pytest.fixture(scope="module")
def translator(tiny_transformer_dir) -> TranslationPipeline:
    """The in-process way: the installed class, so no remote code is needed."""
    return pipeline("translation", model=str(tiny_transformer_dir), pipeline_class=TranslationPipeline)


def test_saved_folder_holds_weights_tokenizer_generation_config_and_code(tiny_transformer_dir):
    files = {path.name for path in tiny_transformer_dir.iterdir()}
    expected = {"model.safetensors", "generation_config.json", "tokenizer.json", "pipeline_translation.py"}
    assert expected | {"modeling_transformer.py", "configuration_transformer.py"} <= files
    config = json.loads((tiny_transformer_dir / "config.json").read_text())
    assert config["custom_pipelines"]["translation"]["impl"] == "pipeline_translation.TranslationPipeline"
    assert config["custom_pipelines"]["translation"]["pt"] == ["AutoModelForSeq2SeqLM"]
    assert json.loads((tiny_transformer_dir / "generation_config.json").read_text())["max_new_tokens"] == 12


def test_remote_pipeline_and_model_come_from_the_folder_code(remote_results):
    pipeline_module, model_module = remote_results["modules"]
    assert pipeline_module.startswith("transformers_modules.") and pipeline_module.endswith(".pipeline_translation")
    assert model_module.startswith("transformers_modules.") and model_module.endswith(".modeling_transformer")


def test_remote_pipeline_translates_like_generate(
    remote_results, tiny_transformer_translator, tiny_translation_tokenizer
):
    expected = generate_and_decode(tiny_transformer_translator, tiny_translation_tokenizer, SOURCES)
    assert expected == TRANSLATIONS  # the tiny model has learnt its pairs, so the texts are not trivial
    assert remote_results["single"] == [{"translation_text": expected[0]}]
    assert texts(remote_results["batch"]) == expected


def test_remote_pipeline_honours_max_new_tokens_and_num_beams(
    remote_results, tiny_transformer_translator, tiny_translation_tokenizer
):
    model, tokenizer = tiny_transformer_translator, tiny_translation_tokenizer
    assert texts(remote_results["max_new_tokens_2"]) == ["我 喜"]  # the first two tokens of "我 喜 欢 茶"
    beams = generate_and_decode(model, tokenizer, SOURCES[:1], num_beams=3, num_return_sequences=3)
    assert texts(remote_results["beams"]) == beams
    assert beams[0] == TRANSLATIONS[0] and len(set(beams)) == 3


def test_remote_auto_classes_give_identical_logits(
    remote_results, tiny_transformer_translator, tiny_translation_tokenizer
):
    batch = tiny_translation_tokenizer(SOURCES, padding=True, return_tensors="pt")
    assert torch.equal(remote_results["input_ids"], batch["input_ids"])
    with torch.no_grad():
        logits = tiny_transformer_translator(**batch, decoder_input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(remote_results["logits"], logits, rtol=0, atol=1e-6)


def test_in_process_pipeline_uses_installed_classes(translator):
    assert type(translator) is TranslationPipeline
    assert type(translator.model) is TransformerForConditionalGeneration
    assert translator(SOURCES[0]) == [{"translation_text": TRANSLATIONS[0]}]
    assert texts(translator(SOURCES, batch_size=2)) == TRANSLATIONS


def test_in_process_without_pipeline_class_transformers_asks_for_trust_remote_code(tiny_transformer_dir):
    # Documents transformers 5.24: a folder whose config names a custom pipeline needs trust_remote_code=True or
    # pipeline_class=TranslationPipeline, even when hf_models is imported.
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("translation", model=str(tiny_transformer_dir))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_empty_and_whitespace_inputs_translate_to_empty_text_without_a_model_call(
    translator, monkeypatch, batch_size
):
    generate = translator.model.generate
    calls = []

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return generate(**kwargs)

    monkeypatch.setattr(translator.model, "generate", counting_generate)
    assert translator("") == [{"translation_text": ""}]
    assert translator(" \t\n ") == [{"translation_text": ""}]
    assert calls == []

    results = translator(["", SOURCES[0], "   ", SOURCES[1], ""], batch_size=batch_size)
    assert texts(results) == ["", TRANSLATIONS[0], "", TRANSLATIONS[1], ""]
    assert sum(calls) == 2  # only the two real sentences reached generate()


def test_over_long_input_is_truncated_with_a_warning(translator, caplog):
    text = " ".join(["tea"] * 30)  # 30 words + </s> = 31 tokens; the model accepts 16
    with caplog.at_level(logging.WARNING, logger="hf_models.pipeline_translation"):
        [result] = translator(text)
    assert "31 tokens" in caplog.text and "truncated to 16 tokens" in caplog.text
    assert isinstance(result["translation_text"], str) and result["translation_text"]


def test_several_sequences_per_input_give_one_list_per_input(translator):
    results = translator(SOURCES[:2], num_beams=2, num_return_sequences=2, batch_size=2)
    assert [len(per_input) for per_input in results] == [2, 2]
    assert [per_input[0]["translation_text"] for per_input in results] == TRANSLATIONS[:2]
    [token_ids] = translator(SOURCES[0], return_tensors=True)
    assert token_ids["translation_token_ids"].dtype == torch.long


def test_any_encoder_decoder_model_works(tiny_translation_tokenizer):
    tokenizer = tiny_translation_tokenizer
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    model = BartForConditionalGeneration(config).eval()
    translator = TranslationPipeline(model=model, tokenizer=tokenizer, max_new_tokens=4)
    expected = generate_and_decode(model, tokenizer, SOURCES, max_new_tokens=4)
    assert texts(translator(SOURCES, batch_size=3)) == expected


def test_decoder_only_model_is_rejected(tiny_translation_tokenizer):
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=8, n_layer=1, n_head=1, n_positions=16))
    with pytest.raises(ValueError, match="encoder-decoder"):
        TranslationPipeline(model=model, tokenizer=tiny_translation_tokenizer)
