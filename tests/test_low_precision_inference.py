"""bf16/fp16 inference for every family: ``from_pretrained(..., dtype=...)``, autocast, and ``pipeline(dtype=...)``.

Matrix products run in the requested dtype; the Fourier mixers' FFTs stay fp32 (as in training). On a CPU without
bf16 instructions (some machines that run CI) a bf16 matrix product is ~80x slower than fp32: the tests use tiny
models and check behaviour, not speed.
"""

import pytest
import torch
from families import FAMILIES
from transformers import pipeline

import transformers

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def saved(family, request, tmp_path):
    model, processor = family.build(request)
    family.pipeline(model, processor).save_pretrained(tmp_path)
    return model, processor


def outputs(model, inputs):
    with torch.no_grad():
        if model.config.is_encoder_decoder and hasattr(model, "generate"):
            return model.generate(**inputs, max_new_tokens=4, do_sample=False)
        return model(**inputs).logits


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_from_pretrained_in_half_precision_matches_fp32(family, dtype, request, tmp_path):
    model, processor = saved(family, request, tmp_path)
    half = getattr(transformers, family.auto_model).from_pretrained(tmp_path, dtype=dtype).eval()
    assert half.dtype == dtype and all(p.dtype == dtype for p in half.parameters())
    inputs = family.process(processor)
    expected, got = outputs(model, inputs), outputs(half, inputs)
    if expected.dtype == torch.long:  # greedy tokens of the translators
        assert got.shape[0] == expected.shape[0]
    else:
        assert got.dtype == dtype and torch.isfinite(got).all()
        torch.testing.assert_close(got.float(), expected, rtol=0, atol=0.05)


@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_autocast_inference_runs_matrix_products_in_bf16(family, request):
    model, processor = family.build(request)
    inputs = family.process(processor)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = outputs(model, inputs)
    if got.dtype != torch.long:
        assert got.dtype == torch.bfloat16  # the classifier head ran under autocast
        torch.testing.assert_close(got.float(), outputs(model, inputs), rtol=0, atol=0.05)


def test_fft_stays_fp32_in_a_bf16_gfnet(request, tmp_path):
    family = next(family for family in FAMILIES if family.name == "gfnet")
    saved(family, request, tmp_path)
    half = transformers.AutoModelForImageClassification.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    seen = []
    handle = torch.fft.rfft2
    try:
        torch.fft.rfft2 = lambda x, *args, **kwargs: seen.append(x.dtype) or handle(x, *args, **kwargs)
        outputs(half, family.process(family.build(request)[1]))
    finally:
        torch.fft.rfft2 = handle
    assert seen and set(seen) == {torch.float32}


@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_pipeline_accepts_dtype(family, request, tmp_path):
    saved(family, request, tmp_path)
    classify = pipeline(family.task, model=str(tmp_path), dtype=torch.bfloat16, trust_remote_code=True)
    assert classify.model.dtype == torch.bfloat16
    results = classify(family.examples())
    assert len(results) == len(family.examples())
