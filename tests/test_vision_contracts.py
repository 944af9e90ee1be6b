"""The transformers contracts every image family (ViT, GFNet, AFNO) honours as transformers' own ViT does, beyond
what the common tester (tests/model_tester.py: return_dict, outputs, checkpointing, bf16, export) checks for every
family: hidden states selected by index and part of the graph, gradient checkpointing with stochastic depth and less
memory, timm-style helpers, ONNX export with a dynamic batch, bf16 loading close to fp32, a saved intermediate_size,
and checkpoints of the older code loading unchanged."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification
from transformers.modeling_outputs import BaseModelOutputWithPooling
from vision_testing import FAMILIES, tiny_classifier

from hf_models.layers import Mlp

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

FAMILY_NAMES = list(FAMILIES)
LEGACY = Path(__file__).parent / "legacy_checkpoints"  # saved by the code before these contracts (see its README)


def pixels(batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 1, 16, 16)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_output_hidden_states_from_config_call_and_indices(family):
    model = tiny_classifier(family)
    x = pixels()
    with torch.no_grad():
        assert model(x).hidden_states is None
        model.config.output_hidden_states = True
        from_config = model(x).hidden_states
        assert model(x, output_hidden_states=False).hidden_states is None
        model.config.output_hidden_states = False
        from_call = model(x, output_hidden_states=True).hidden_states
        selected = model(x, output_hidden_states=[0, -1]).hidden_states
        base = model.base_model(x, output_hidden_states=True)
    # embeddings + one per block, before the final LayerNorm (as transformers' ViT)
    assert len(from_config) == len(from_call) == model.config.num_hidden_layers + 1
    for a, b in zip(from_config, from_call):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(selected[0], from_call[0]) and torch.equal(selected[-1], from_call[-1])
    assert all(state is None for state in selected[1:-1])
    assert isinstance(base, BaseModelOutputWithPooling) and len(base.hidden_states) == len(from_call)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_hidden_states_are_the_graph_and_receive_gradients(family):
    """transformers' common test: ``hidden_states[i].retain_grad()`` then backward fills ``.grad`` for every i.
    Only a tensor the later layers really consume gets one (a reshaped copy made for the output would not)."""
    model = tiny_classifier(family).train()
    outputs = model(pixels(), output_hidden_states=True)
    for state in outputs.hidden_states:
        state.retain_grad()
    outputs.logits.sum().backward()
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in outputs.hidden_states)


def test_vit_output_attentions_from_config_and_call_receive_gradients():
    model = tiny_classifier("vit").train()
    x = pixels()
    assert model(x).attentions is None
    model.set_attn_implementation("eager")  # transformers refuses config.output_attentions with SDPA
    model.config.output_attentions = True
    outputs = model(x)
    assert len(outputs.attentions) == 2 and outputs.attentions[0].shape == (2, 2, 17, 17)
    assert model(x, output_attentions=False).attentions is None
    outputs.attentions[0].retain_grad()
    outputs.logits.sum().backward()
    assert outputs.attentions[0].grad is not None


@pytest.mark.parametrize("family", ["gfnet", "afno"])
def test_fourier_families_have_no_attentions(family):
    with torch.no_grad():
        assert tiny_classifier(family)(pixels(), output_attentions=True).attentions is None


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(family):
    """Stochastic depth and dropout on: the recomputation replays the same random masks (checkpointing restores the
    RNG state), so loss and gradients equal those of the plain backward pass."""
    x, labels = pixels(4), torch.tensor([0, 1, 2, 0])
    runs = []
    for checkpointing in (False, True):
        model = tiny_classifier(family, drop_path_rate=0.2, hidden_dropout_prob=0.1).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.base_model.modules() if hasattr(layer, "token_mixer"))
        torch.manual_seed(3)
        loss = model(x, labels=labels).loss
        loss.backward()
        runs.append((loss.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (plain_loss, plain_grads), (checkpointed_loss, checkpointed_grads) = runs
    torch.testing.assert_close(checkpointed_loss, plain_loss, rtol=0, atol=0)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def bytes_saved_for_backward(model, x: torch.Tensor) -> int:
    """What autograd keeps alive between forward and backward, outside the checkpointed blocks (whose activations
    checkpointing drops and recomputes)."""
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x).logits.sum().backward()
    return saved


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_gradient_checkpointing_keeps_fewer_activations(family):
    model = tiny_classifier(family, num_hidden_layers=4).train()
    x = pixels(8)
    plain = bytes_saved_for_backward(model, x)
    model.gradient_checkpointing_enable()
    assert bytes_saved_for_backward(model, x) < plain / 2


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_forward_features_are_the_normed_tokens_before_pooling(family):
    model = tiny_classifier(family)
    x = pixels()
    with torch.no_grad():
        features = model.forward_features(x)
        outputs = model.base_model(x)
        logits = model(x).logits
    assert features.shape == (2, 16 + (family == "vit"), 16)
    torch.testing.assert_close(features, outputs.last_hidden_state, rtol=0, atol=0)
    pooled = features[:, 0] if family == "vit" else features.mean(dim=1)
    torch.testing.assert_close(model.classifier(pooled), logits, rtol=0, atol=0)
    assert model.get_input_embeddings() is model.base_model.get_input_embeddings()
    assert model.get_input_embeddings().projection.out_channels == 16


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_reset_classifier_replaces_the_head_and_the_labels(family, tmp_path):
    model = tiny_classifier(family)
    body = {name: p.clone() for name, p in model.named_parameters() if not name.startswith("classifier")}
    model.reset_classifier(5)
    assert model.classifier.out_features == 5 and model.num_labels == model.config.num_labels == 5
    assert model.config.id2label == {i: f"LABEL_{i}" for i in range(5)}
    assert all(torch.equal(p, body[name]) for name, p in model.named_parameters() if name in body)
    with torch.no_grad():
        assert model(pixels()).logits.shape == (2, 5)
    model.reset_classifier(2, id2label={0: "cat", 1: "dog"})
    assert model.config.label2id == {"cat": 0, "dog": 1}
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    assert reloaded.classifier.out_features == 2 and reloaded.config.id2label == {0: "cat", 1: "dog"}
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(pixels()).logits.shape == (2, 16)  # no head: the pooled features
    with pytest.raises(ValueError, match="id2label"):
        model.reset_classifier(3, id2label={0: "a"})


@pytest.mark.slow  # the dynamo exporter takes 10-50 s per model on this machine
@pytest.mark.parametrize("family, overrides", [("vit", {}), ("gfnet", {}), ("afno", {"hard_thresholding_fraction": 0.75})])
def test_onnx_export_with_a_dynamic_batch_matches_pytorch(family, overrides, tmp_path):
    """``torch.onnx.export(dynamo=True)``: no data-dependent Python in forward, FFTs the exporter supports, AFNO's
    spectral MLP in real arithmetic (the exporter has no complex einsum); truncated modes are exported too."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_classifier(family, **overrides)
    program = torch.onnx.export(
        model,
        (pixels(2),),
        dynamo=True,
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch")}},
    )
    program.save(tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(tmp_path / "model.onnx")
    for batch in (1, 5):
        x = pixels(batch)
        (logits,) = session.run(None, {"pixel_values": x.numpy()})
        with torch.no_grad():
            expected = model(x).logits
        assert logits.shape == (batch, 3)
        torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_bfloat16_from_pretrained_and_from_config_run_close_to_float32(family, tmp_path):
    """Weights in bf16, FFTs and AFNO's spectral MLP in float32 inside (cast back), logits finite and near fp32's;
    another image size and a training step work in bf16 too."""
    model = tiny_classifier(family)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)  # logits of order 1, not of the 0.02 init
    model.save_pretrained(tmp_path)
    x = pixels()
    with torch.no_grad():
        reference = model(x).logits
    from_config = AutoModelForImageClassification.from_config(model.config, dtype=torch.bfloat16)
    from_config.load_state_dict(model.state_dict())
    for loaded in (AutoModelForImageClassification.from_pretrained(tmp_path, dtype=torch.bfloat16), from_config):
        loaded.eval()
        assert loaded.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in loaded.parameters())
        with torch.no_grad():
            logits = loaded(x).logits
            resized = loaded(torch.randn(2, 1, 24, 20), interpolate_pos_encoding=True).logits
        assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all() and torch.isfinite(resized).all()
        torch.testing.assert_close(logits.float(), reference, rtol=0.02, atol=0.02 * reference.abs().max().item())
    from_config.train()
    from_config(x, labels=torch.tensor([0, 2])).loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in from_config.parameters())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_checkpoint_saved_by_the_old_code_loads_with_the_same_outputs(family):
    folder = LEGACY / family
    assert "intermediate_size" not in json.loads((folder / "config.json").read_text())
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert model.config.intermediate_size == 32 and model.config.mlp_ratio == 2.0  # hidden 16, ratio 2
    expected = load_file(folder / "expected_outputs.safetensors")
    with torch.no_grad():
        logits = model(expected["pixel_values"]).logits
    # the same function up to float32 rounding: AFNO's spectral MLP is now in real arithmetic, and the other families'
    # kernels may sum in another order run to run (a fresh-clone run of the ViT differed by 1.1e-8)
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_intermediate_size_is_a_saved_field(family, tmp_path):
    config_class, extra = FAMILIES[family].config_class, FAMILIES[family].sizes
    derived = config_class(hidden_size=32, mlp_ratio=2.5, **extra)
    assert derived.intermediate_size == 80
    given = config_class(hidden_size=32, intermediate_size=48, **extra)
    assert given.mlp_ratio == 1.5 and given.intermediate_size == 48
    given.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["intermediate_size"] == 48 and saved["mlp_ratio"] == 1.5
    assert config_class.from_pretrained(tmp_path).intermediate_size == 48
    assert config_class.from_pretrained(tmp_path, mlp_ratio=3.0).intermediate_size == 96  # re-derived, not stale
    assert config_class.from_pretrained(tmp_path, intermediate_size=40).mlp_ratio == 1.25
    model = tiny_classifier(family, intermediate_size=24, mlp_ratio=None)
    assert all(mlp.fc1.out_features == 24 for mlp in model.modules() if isinstance(mlp, Mlp))
    with pytest.raises(ValueError, match="intermediate_size"):
        config_class(hidden_size=32, intermediate_size=48, mlp_ratio=4.0, **extra)
    with pytest.raises(ValueError, match="intermediate_size"):
        config_class(hidden_size=32, intermediate_size=0, **extra)
