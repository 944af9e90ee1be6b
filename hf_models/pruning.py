"""Structured pruning: whole attention heads and whole MLP/FFN units removed, recorded in the config so that a
pruned model reloads with ``from_pretrained`` (and ``trust_remote_code=True``, and ``pipeline()``) unchanged.

Importance, from a few calibration batches (dicts with ``labels``, as the model's forward takes them):

* heads: Michel et al. (2019), "Are Sixteen Heads Really Better than One?": a mask ``xi_h = 1`` multiplies each
  head's output and ``I_h = sum_batches |dL / d xi_h|``; low-scoring heads go first.
* MLP units: ``"taylor"`` (Molchanov et al. 2017): the same mask on each hidden unit's activation, so
  ``|dL / d xi_j| = |sum_tokens a_j dL/da_j|``, the first-order change of the loss if unit j were removed; or
  ``"l1"``: the L1 norm of the unit's input row plus its output column (no data needed).

Both masks sit on the input of the layer that reads the heads or units (``out_proj``, ``fc2``), as forward
pre-hooks, so the models carry no pruning code. Removal uses transformers' ``prune_linear_layer`` on the packed
query/key/value projection (per head: its ``head_dim`` rows of Q, of K and of V), ``out_proj``'s columns, ``fc1``'s
rows and ``fc2``'s columns. Every layer keeps ``head_dim``; the remaining counts go to the config's ``*_per_layer``
lists (e.g. ``num_attention_heads_per_layer``, ``intermediate_size_per_layer``), which the constructors read.

A fraction prunes every layer alike (``floor(fraction * size)`` of its heads / units), so the pruned shapes are
uniform and the speed-up predictable; ``prune_heads`` / ``prune_mlp_units`` remove chosen indices.
"""

import math
from collections.abc import Iterable

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer


def attention_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every prunable attention layer by module name: the ones that record their head count in a config field."""
    return {name: module for name, module in model.named_modules() if hasattr(module, "heads_field")}


def mlp_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every prunable MLP/FFN by module name: ``fc1 -> activation -> fc2`` modules with a ``sizes_field``."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "sizes_field") and hasattr(module, "fc1") and hasattr(module, "fc2")
    }


def _masked_gradients(model, modules: dict[str, nn.Module], reader: str, group_size, batches) -> dict[str, torch.Tensor]:
    """sum over batches of |dL/d mask| for a ones mask on the input of each module's ``reader`` sub-layer, grouped
    ``group_size(module)`` features per mask entry (a head's ``head_dim`` features, or one MLP unit)."""
    batches = list(batches)
    if not batches:
        raise ValueError("head/unit importance needs at least one calibration batch")
    masks, handles = {}, []
    for name, module in modules.items():
        size = getattr(module, reader).in_features // group_size(module)
        mask = torch.ones(size, requires_grad=True, device=getattr(module, reader).weight.device)
        masks[name] = mask

        def apply(layer, args, mask=mask, group=group_size(module)):
            return (args[0] * mask.repeat_interleave(group).to(args[0].dtype),) + args[1:]

        handles.append(getattr(module, reader).register_forward_pre_hook(apply))
    importance = {name: torch.zeros_like(mask) for name, mask in masks.items()}
    was_training = model.training
    model.eval()  # dropout off: the score of the model as it will be used
    try:
        for batch in batches:
            loss = model(**batch).loss
            if loss is None:
                raise ValueError("calibration batches need labels: the importance is a gradient of the loss")
            gradients = torch.autograd.grad(loss, list(masks.values()))
            for name, gradient in zip(masks, gradients):
                importance[name] += gradient.detach().abs()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return importance


def head_importance(model: nn.Module, batches: Iterable[dict]) -> dict[str, torch.Tensor]:
    """Michel et al.'s importance of every head: ``{attention module name: (num_heads,) scores}``."""
    return _masked_gradients(model, attention_layers(model), "out_proj", lambda module: module.head_dim, batches)


def mlp_unit_importance(model: nn.Module, batches: Iterable[dict] | None = None, method: str = "taylor"):
    """Importance of every MLP/FFN hidden unit: ``{MLP module name: (units,) scores}``, by ``"taylor"`` (needs
    ``batches``) or ``"l1"`` (weights only)."""
    layers = mlp_layers(model)
    if method == "l1":
        return {
            name: module.fc1.weight.detach().abs().sum(1) + module.fc2.weight.detach().abs().sum(0)
            for name, module in layers.items()
        }
    if method != "taylor":
        raise ValueError(f"method must be 'taylor' or 'l1', got {method!r}")
    if batches is None:
        raise ValueError("Taylor importance needs calibration batches (or use method='l1')")
    return _masked_gradients(model, layers, "fc2", lambda module: 1, batches)


def _record_sizes(model: nn.Module, modules: Iterable[nn.Module], field_of, size_of) -> None:
    """Writes the per-layer sizes of ``modules`` to ``model.config`` (one list per config field, by layer index)."""
    by_field: dict[str, dict[int, int]] = {}
    for module in modules:
        by_field.setdefault(field_of(module), {})[module.layer_idx] = size_of(module)
    for field, sizes in by_field.items():
        setattr(model.config, field, [sizes[index] for index in range(len(sizes))])


def _check_removal(name: str, remove, size: int, what: str) -> list[int]:
    remove = sorted(set(int(index) for index in remove))
    if any(index < 0 or index >= size for index in remove):
        raise ValueError(f"{name}: {what} indices {remove} out of range for its {size} {what}s")
    if len(remove) >= size:
        raise ValueError(f"{name}: removing {len(remove)} of its {size} {what}s would leave none; keep at least one")
    return remove


def _removals(layers: dict[str, nn.Module], requested: dict[str, Iterable[int]], layer_kind: str, size_of, what: str):
    """Yields ``(module, sorted indices)`` for each requested layer with something to remove, after checking that the
    layer exists and that the indices are in range and leave at least one ``what`` (head or unit)."""
    unknown = set(requested) - set(layers)
    if unknown:
        raise ValueError(f"no prunable {layer_kind} named {sorted(unknown)}; the model has {sorted(layers)}")
    for name, remove in requested.items():
        module = layers[name]
        remove = _check_removal(name, remove, size_of(module), what)
        if remove:
            yield module, remove


@torch.no_grad()
def prune_heads(model: nn.Module, heads: dict[str, Iterable[int]]) -> None:
    """Removes the given heads (``{attention module name: head indices}``) in place and records the new counts."""
    layers = attention_layers(model)
    for module, remove in _removals(layers, heads, "attention layer", lambda module: module.num_heads, "head"):
        keep = [head for head in range(module.num_heads) if head not in remove]
        features = torch.cat([torch.arange(head * module.head_dim, (head + 1) * module.head_dim) for head in keep])
        packed = torch.cat([features + part * module.inner_size for part in range(3)])  # Q, K, V rows
        module.in_proj = prune_linear_layer(module.in_proj, packed.to(module.in_proj.weight.device), dim=0)
        module.out_proj = prune_linear_layer(module.out_proj, features.to(module.out_proj.weight.device), dim=1)
        module.num_heads = len(keep)
        module.inner_size = module.num_heads * module.head_dim
    _record_sizes(model, layers.values(), lambda module: module.heads_field, lambda module: module.num_heads)


@torch.no_grad()
def prune_mlp_units(model: nn.Module, units: dict[str, Iterable[int]]) -> None:
    """Removes the given hidden units (``{MLP module name: unit indices}``) in place and records the new widths."""
    layers = mlp_layers(model)
    for module, remove in _removals(layers, units, "MLP", lambda module: module.fc1.out_features, "unit"):
        keep = torch.tensor([unit for unit in range(module.fc1.out_features) if unit not in remove])
        module.fc1 = prune_linear_layer(module.fc1, keep.to(module.fc1.weight.device), dim=0)
        module.fc2 = prune_linear_layer(module.fc2, keep.to(module.fc2.weight.device), dim=1)
    _record_sizes(model, layers.values(), lambda module: module.sizes_field, lambda module: module.fc1.out_features)


def lowest(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, list[int]]:
    """The ``floor(fraction * n)`` lowest-scoring indices of each layer."""
    return {name: score.argsort()[: math.floor(fraction * score.numel())].tolist() for name, score in scores.items()}


def check_fraction(name: str, fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name} must be in [0, 1) (the share of each layer's heads or units to remove), got {fraction!r}")


def prune(
    model: nn.Module,
    batches: list[dict] | None,
    head_fraction: float = 0.0,
    mlp_fraction: float = 0.0,
    mlp_importance: str = "taylor",
) -> dict:
    """Removes ``head_fraction`` of every attention layer's heads (Michel et al. importance) and ``mlp_fraction`` of
    every MLP's units (``mlp_importance``), in place. Returns what was removed, for the model card."""
    check_fraction("head_fraction", head_fraction)
    check_fraction("mlp_fraction", mlp_fraction)
    if head_fraction and not attention_layers(model):
        raise ValueError(f"{type(model).__name__} has no attention heads to prune; use head_fraction=0")
    if mlp_fraction and not mlp_layers(model):
        raise ValueError(f"{type(model).__name__} has no prunable MLP; use mlp_fraction=0")
    before = count_parameters(model)
    report = {"head_fraction": head_fraction, "mlp_fraction": mlp_fraction, "mlp_importance": mlp_importance}
    if head_fraction:
        heads = lowest(head_importance(model, batches or []), head_fraction)
        prune_heads(model, heads)
        report["removed_heads"] = heads
    if mlp_fraction:
        units = lowest(mlp_unit_importance(model, batches, mlp_importance), mlp_fraction)
        prune_mlp_units(model, units)
        report["removed_units"] = {name: len(removed) for name, removed in units.items()}
    report["sizes"] = pruned_sizes(model.config)
    report["parameters_before"], report["parameters_after"] = before, count_parameters(model)
    return report


def pruned_sizes(config) -> dict[str, list[int]]:
    """The config's per-layer size lists (only those pruning wrote)."""
    return {key: value for key, value in config.to_dict().items() if key.endswith("_per_layer") and value is not None}


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
