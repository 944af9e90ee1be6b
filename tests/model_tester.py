"""The contracts a transformers user relies on, checked on every family's head (tests/test_common.py runs them).

Modelled on transformers' own ``ModelTesterMixin`` (tests/test_modeling_common.py of the 5.24 sdist): the same
contracts (save/load, ``return_dict`` tuple equivalence, hidden states and attentions per call and from the config,
gradient checkpointing, training, export), written for our families' registry (tests/families.py) instead of per-model
tester classes, with the checks that MarianMT or ViT pass and a new family must pass too: the errors of a bad config
name the field, a ``bf16`` model built from its config gives finite outputs, ``torch.onnx.export(dynamo=True)``
matches under onnxruntime.
"""

import copy
import math

import pytest
import torch
import transformers
from families import Family
from safetensors.torch import load_file
from transformers.utils import ModelOutput

CHECKS = (
    "save_load",
    "return_dict",
    "hidden_states_per_call",
    "hidden_states_from_config",
    "attentions_per_call",
    "attentions_from_config",
    "gradient_checkpointing",
    "config_errors",
    "bf16_from_config",
    "onnx_export",
    "training_step",
    "peft_lora",
)
SLOW_CHECKS = {"onnx_export"}  # 4-25 s each here: torch.export, then the ONNX translation


def assert_same_outputs(actual, expected, atol: float = 0.0, path: str = "output") -> None:
    """Every tensor of two (nested) outputs is equal within ``atol``; ``None`` matches ``None``; a cache object
    (not a tensor) is skipped, as in transformers' ``test_model_outputs_equivalence``."""
    if isinstance(expected, (ModelOutput, dict)):
        assert isinstance(actual, (ModelOutput, dict)) and actual.keys() == expected.keys(), path
        for key in expected:
            assert_same_outputs(actual[key], expected[key], atol, f"{path}.{key}")
    elif isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), f"{path}: lengths differ"
        for index, (left, right) in enumerate(zip(actual, expected)):
            assert_same_outputs(left, right, atol, f"{path}[{index}]")
    elif isinstance(expected, torch.Tensor):
        torch.testing.assert_close(actual, expected, rtol=0, atol=atol, msg=lambda message: f"{path}: {message}")
    elif expected is None:
        assert actual is None, f"{path}: expected None, got {type(actual).__name__}"


class ModelTester:
    """One family's head (``model``, in eval mode) and its tokenizer or image processor, and the checks on them.

    Every check method is ``check_<name>`` for a name in ``CHECKS``, so tests/test_common.py can parametrise over
    families x checks and mark a (family, check) expected to fail in one table.
    """

    def __init__(self, family: Family, model, processor):
        self.family = family
        self.model = model
        self.processor = processor
        self.inputs = family.inputs(processor)
        self.labelled_inputs = family.inputs(processor, labels=True)

    def fresh_model(self, seed: int = 0, **kwargs):
        """A new model of the head's class from (a copy of) its config, with fixed initial weights."""
        torch.manual_seed(seed)
        return type(self.model)._from_config(copy.deepcopy(self.model.config), **kwargs)

    def forward(self, model=None, labels: bool = False, **kwargs):
        model = self.model if model is None else model
        with torch.no_grad():
            return model(**(self.labelled_inputs if labels else self.inputs), **kwargs)

    # --- save / load -------------------------------------------------------------------------------------------

    def check_save_load(self, tmp_path) -> None:
        """save_pretrained writes safetensors only; the family's Auto class reloads the same class, which gives the
        same outputs exactly; and what it loaded saves and reloads again (``from_pretrained`` adds config fields)."""
        self.model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file()
        assert not [path.name for path in tmp_path.iterdir() if path.suffix in (".bin", ".pt", ".pth", ".pkl")]
        assert load_file(tmp_path / "model.safetensors"), "no tensors saved"
        auto_class = getattr(transformers, self.family.auto_model)
        loaded = auto_class.from_pretrained(tmp_path).eval()
        assert type(loaded) is type(self.model)
        assert_same_outputs(self.forward(loaded, output_hidden_states=True), self.forward(output_hidden_states=True))
        loaded.save_pretrained(tmp_path / "again")
        again = auto_class.from_pretrained(tmp_path / "again").eval()
        assert_same_outputs(self.forward(again), self.forward())

    # --- outputs -----------------------------------------------------------------------------------------------

    def check_return_dict(self, tmp_path=None) -> None:
        """A ``ModelOutput`` by default and for ``return_dict=None`` (what PEFT and Trainer pass); ``return_dict=False``
        and ``config.return_dict=False`` give exactly its ``to_tuple()``, also with loss, hidden states, attentions."""
        assert isinstance(self.forward(), ModelOutput)
        assert isinstance(self.forward(return_dict=None), ModelOutput)
        extras = [{}, {"output_hidden_states": True}]
        if self.has_attentions:
            extras.append({"output_attentions": True})
        for labels in (False, True):
            for extra in extras:
                as_dict = self.forward(labels=labels, return_dict=True, **extra)
                as_tuple = self.forward(labels=labels, return_dict=False, **extra)
                assert isinstance(as_tuple, tuple), f"return_dict=False gave {type(as_tuple).__name__}"
                assert_same_outputs(as_tuple, as_dict.to_tuple(), path=f"labels={labels} {extra}")
        model = copy.deepcopy(self.model)
        model.config.return_dict = False
        assert_same_outputs(self.forward(model), self.forward().to_tuple(), path="config.return_dict=False")

    @property
    def has_attentions(self) -> bool:
        return any(name.endswith("attentions") for name in self.family.outputs(self.model.config))

    def expected_lengths(self, kind: str) -> dict[str, int]:
        """The output fields of ``kind`` ("hidden_states" or "attentions") and their expected tuple lengths."""
        lengths = {name: n for name, n in self.family.outputs(self.model.config).items() if name.endswith(kind)}
        if not lengths:
            pytest.skip(f"{self.family.name} has no {kind} (no attention weights)")
        return lengths

    def assert_recorded(self, outputs, lengths: dict[str, int], kind: str) -> None:
        hidden_size = self.model.config.hidden_size
        for name, length in lengths.items():
            recorded = getattr(outputs, name)
            assert isinstance(recorded, tuple), f"{name} is {type(recorded).__name__}, not a tuple"
            assert len(recorded) == length, f"{name}: {len(recorded)} tensors, expected {length}"
            for tensor in recorded:
                assert torch.isfinite(tensor).all(), name
                if kind == "hidden_states":
                    assert tensor.shape[-1] == hidden_size, f"{name}: shape {tuple(tensor.shape)}"
        others = {"hidden_states": "attentions", "attentions": "hidden_states"}[kind]
        for name in self.family.outputs(self.model.config):
            if name.endswith(others):
                assert getattr(outputs, name) is None, f"{name} returned without being asked for"

    def check_hidden_states_per_call(self, tmp_path=None) -> None:
        lengths = self.expected_lengths("hidden_states")
        self.assert_recorded(self.forward(output_hidden_states=True), lengths, "hidden_states")

    def check_attentions_per_call(self, tmp_path=None) -> None:
        lengths = self.expected_lengths("attentions")
        self.assert_recorded(self.forward(output_attentions=True), lengths, "attentions")

    def check_hidden_states_from_config(self, tmp_path=None) -> None:
        lengths = self.expected_lengths("hidden_states")
        model = copy.deepcopy(self.model)
        model.config.output_hidden_states = True
        self.assert_recorded(self.forward(model), lengths, "hidden_states")

    def check_attentions_from_config(self, tmp_path=None) -> None:
        """As transformers' ``test_attention_outputs``: on eager attention (SDPA computes no weights, and transformers
        refuses ``config.output_attentions=True`` with it)."""
        lengths = self.expected_lengths("attentions")
        model = copy.deepcopy(self.model)
        if model.config._attn_implementation != "eager":
            model.set_attn_implementation("eager")
        model.config.output_attentions = True
        self.assert_recorded(self.forward(model), lengths, "attentions")

    # --- training ----------------------------------------------------------------------------------------------

    def loss_and_grads(self, model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        loss = model(**self.labelled_inputs).loss
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    def check_gradient_checkpointing(self, tmp_path=None) -> None:
        """``gradient_checkpointing_enable()`` turns it on and gives the same loss and gradients (dropout is 0 in
        every tiny config, so the recomputed forward is the same); ``..._disable()`` turns it off."""
        model = self.fresh_model().train()
        assert not model.is_gradient_checkpointing
        loss, grads = self.loss_and_grads(model)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        assert model.is_gradient_checkpointing
        checkpointed_loss, checkpointed_grads = self.loss_and_grads(model)
        torch.testing.assert_close(checkpointed_loss, loss)
        assert checkpointed_grads.keys() == grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(checkpointed_grads[name], grad, msg=lambda message: f"{name}: {message}")
        model.gradient_checkpointing_disable()
        assert not model.is_gradient_checkpointing

    def check_training_step(self, tmp_path=None) -> None:
        """Five Adam steps on one batch lower the loss, and every parameter but the padding row gets a gradient."""
        model = self.fresh_model().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(5):
            loss = model(**self.labelled_inputs).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert all(math.isfinite(loss) for loss in losses), losses
        assert losses[-1] < losses[0], losses
        missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"parameters without a gradient: {missing}"

    def check_peft_lora(self, tmp_path) -> None:
        """PEFT's LoRA on every linear layer (``target_modules="all-linear"``, what a user fine-tuning one writes): it
        starts as the base model (B = 0), training moves only the adapters (and the classification head it saves
        whole), the saved adapter on a fresh base gives the trained outputs, and ``merge_and_unload`` gives back our
        own class with those outputs, which ``generate()`` (seq2seq) and ``save_pretrained`` keep."""
        peft = pytest.importorskip("peft")
        base = self.fresh_model().eval()
        before = self.forward(base).logits
        task_type = "SEQ_2_SEQ_LM" if self.family.seq2seq else "SEQ_CLS" if not self.family.images else None
        config = peft.LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", task_type=task_type,
            modules_to_save=["classifier"] if self.family.images else None,
        )
        frozen = {name: parameter.detach().clone() for name, parameter in base.named_parameters()}
        model = peft.get_peft_model(base, config)
        adapted = [name for name, module in model.named_modules() if isinstance(module, peft.tuners.lora.LoraLayer)]
        assert adapted, "LoRA found no linear layer to adapt"
        assert_same_outputs(self.forward(model.eval()).logits, before, atol=1e-6, path="LoRA with B = 0")
        trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
        assert all("lora_" in name or "modules_to_save" in name for name in trainable), trainable
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(3):
            loss = model(**self.labelled_inputs).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        trained = self.forward(model).logits
        assert not torch.allclose(trained, before), "training the adapters changed nothing"
        unchanged = model.get_base_model()
        for name, parameter in unchanged.named_parameters():
            original = name.replace("base_layer.", "").replace("original_module.", "")
            if original in frozen and "lora_" not in name and "modules_to_save" not in name:
                assert torch.equal(parameter, frozen[original]), f"{name} changed: LoRA must leave the base frozen"
        model.save_pretrained(tmp_path / "adapter")
        assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
        reloaded = peft.PeftModel.from_pretrained(self.fresh_model().eval(), tmp_path / "adapter").eval()
        assert_same_outputs(self.forward(reloaded).logits, trained, atol=1e-6, path="adapter reloaded on a fresh base")
        merged = reloaded.merge_and_unload()
        assert type(merged) is type(self.model)
        assert_same_outputs(self.forward(merged).logits, trained, atol=1e-5, path="merged")
        if self.family.seq2seq:
            source = {key: self.inputs[key] for key in ("input_ids", "attention_mask")}
            with torch.no_grad():
                assert torch.equal(model.generate(**source, max_new_tokens=4), merged.generate(**source, max_new_tokens=4))
        merged.save_pretrained(tmp_path / "merged")
        loaded = getattr(transformers, self.family.auto_model).from_pretrained(tmp_path / "merged").eval()
        assert_same_outputs(self.forward(loaded).logits, trained, atol=1e-5, path="merged, saved and reloaded")

    # --- configuration, dtypes, export -------------------------------------------------------------------------

    def check_config_errors(self, tmp_path=None) -> None:
        """A bad value fails when the config is built, with an error naming the field."""
        config_class = type(self.model.config)
        settings = self.model.config.to_diff_dict()
        for name, value in self.family.bad_config.items():
            with pytest.raises(ValueError, match=name):
                config_class(**{**settings, name: value})

    def check_bf16_from_config(self, tmp_path=None) -> None:
        """``_from_config(config, dtype=torch.bfloat16)`` (what ``from_pretrained(dtype=...)`` builds on) holds only
        bf16 weights and gives finite bf16 logits."""
        model = self.fresh_model(dtype=torch.bfloat16).eval()
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        inputs = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in self.inputs.items()}
        with torch.no_grad():
            logits = model(**inputs).logits
        assert logits.dtype == torch.bfloat16
        assert torch.isfinite(logits.float()).all()

    def check_onnx_export(self, tmp_path) -> None:
        """``torch.onnx.export(dynamo=True)`` of the head (logits out), run by onnxruntime, gives the same logits."""
        onnxruntime = pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        names = list(self.inputs)
        extra = {"use_cache": False} if self.family.seq2seq else {}

        class Logits(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, *tensors):
                return self.model(**dict(zip(names, tensors)), **extra).logits

        args = tuple(self.inputs[name] for name in names)
        path = tmp_path / "model.onnx"
        if getattr(self.model.config, "attention_type", "softmax") == "performer":
            # FAVOR+ loops over blocks of the sequence in Python: an export would freeze the example's length, so the
            # model refuses instead of exporting a graph that is wrong for every other length
            with pytest.raises(Exception, match="attention_type='performer' cannot be exported"):
                torch.onnx.export(Logits(self.model).eval(), args, str(path), input_names=names, dynamo=True)
            return
        torch.onnx.export(Logits(self.model).eval(), args, str(path), input_names=names, dynamo=True)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {name: self.inputs[name].numpy() for name in (i.name for i in session.get_inputs())}
        (logits,) = session.run(None, feeds)
        torch.testing.assert_close(torch.from_numpy(logits), self.forward().logits, rtol=1e-4, atol=1e-5)
