"""Shared fixtures: a tiny en->zh tokenizer and a tiny Transformer that has learnt three sentence pairs.

Built here from scratch (``tokenizers`` WordLevel, a few Adam steps), so tests need neither the trained corpus
tokenizer nor a trained checkpoint. Session-scoped because training takes a second: do not modify them in a test.
"""

import contextlib
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from hub_server import local_hub_session
from transformers import PreTrainedTokenizerFast

from hf_models import TransformerConfig, TransformerForConditionalGeneration
from hf_models.pipeline_translation import save_for_translation

# Chinese is written with spaces between characters, so a whitespace WordLevel tokenizer covers both sides.
TINY_TRANSLATION_PAIRS = [
    ("i like tea", "我 喜 欢 茶"),
    ("you like rice", "你 喜 欢 米 饭"),
    ("we drink water", "我 们 喝 水"),
]
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3, as in the project's joint tokenizer
TINY_MAX_LENGTH = 16


@contextlib.contextmanager
def one_torch_thread():
    """Runs tiny-tensor work on one thread: on this shared 2-core machine, with neighbours busy, OpenMP's second
    thread made the 30 training steps below take 10.8 s instead of 0.19 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def torch_single_thread_module():
    """``pytestmark = pytest.mark.usefixtures("torch_single_thread_module")`` runs a whole test module on one thread."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_translation_pairs() -> list[tuple[str, str]]:
    return list(TINY_TRANSLATION_PAIRS)


@pytest.fixture(scope="session")
def tiny_translation_tokenizer() -> PreTrainedTokenizerFast:
    """Joint word-level vocabulary of the pairs; appends ``</s>``; ``model_max_length`` = 16."""
    words = sorted({word for pair in TINY_TRANSLATION_PAIRS for sentence in pair for word in sentence.split()})
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=TINY_MAX_LENGTH,
    )


@pytest.fixture(scope="session")
def tiny_transformer_translator(tiny_translation_tokenizer) -> TransformerForConditionalGeneration:
    """A 1+1-layer Transformer (hidden 32, 2 heads) trained until greedy decoding reproduces every target."""
    tokenizer = tiny_translation_tokenizer
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        encoder_layers=1,
        decoder_layers=1,
        max_position_embeddings=TINY_MAX_LENGTH,
        dropout=0.0,
    )
    model = TransformerForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 12
    sources = tokenizer([source for source, _ in TINY_TRANSLATION_PAIRS], padding=True, return_tensors="pt")
    labels = tokenizer([target for _, target in TINY_TRANSLATION_PAIRS], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with one_torch_thread():
        for _ in range(30):
            loss = model(**sources, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_transformer_dir(tmp_path_factory, tiny_transformer_translator, tiny_translation_tokenizer) -> Path:
    """The trained tiny Transformer saved by ``save_for_translation``: weights, tokenizer, generation config, and
    the model and pipeline code, so ``pipeline("translation", model=dir, trust_remote_code=True)`` works anywhere."""
    folder = tmp_path_factory.mktemp("tiny_transformer_translation")
    save_for_translation(tiny_transformer_translator, tiny_translation_tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    """A Hugging Face Hub on loopback (tests/hub_server.py) for the module's tests: ``push_to_hub`` in this process
    and ``from_pretrained`` in subprocesses (through ``HF_ENDPOINT``) go to it; user "tester", token in ``HF_TOKEN``."""
    with local_hub_session(tmp_path_factory.mktemp("local_hub")) as hub:
        yield hub
