"""Config checks shared by every configuration class: a bad value fails at construction with the field's name."""

from collections.abc import Iterable


def check_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_choice(name: str, value, choices: Iterable) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_probability(name: str, value) -> None:
    """A dropout-like rate: in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_per_layer_sizes(name: str, sizes, num_layers: int, maximum: int | None = None) -> None:
    """A per-layer size list written by structured pruning (``hf_models.pruning``): ``None`` (every layer has the
    config's uniform size) or one positive integer per layer, at most ``maximum``."""
    if sizes is None:
        return
    if not isinstance(sizes, (list, tuple)) or len(sizes) != num_layers:
        raise ValueError(f"{name} must be None or a list of {num_layers} sizes (one per layer), got {sizes!r}")
    for index, size in enumerate(sizes):
        check_int(f"{name}[{index}]", size)
        if maximum is not None and size > maximum:
            raise ValueError(f"{name}[{index}] = {size} exceeds {maximum}, the unpruned size")


def per_layer_size(config, name: str, layer_idx: int | None, default: int) -> int:
    """Layer ``layer_idx``'s size from the config's per-layer list ``name`` (a pruned model), else ``default``."""
    sizes = getattr(config, name, None)
    return default if sizes is None or layer_idx is None else sizes[layer_idx]
