"""The configuration fields ViT, GFNet and AFNO share: image and patch geometry, width, depth, MLP, regularisation.

Each family's configuration subclasses ``PatchImageConfig`` and adds only what its token mixer needs (attention
heads for ViT, Fourier blocks and thresholds for AFNO), so the shared fields are validated once and named alike.
"""

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .validation import check_choice, check_int, check_per_layer_sizes, check_probability


class PatchImageConfig(PreTrainedConfig):
    """Fields of an isotropic patch-based image classifier: the image is cut into ``patch_size`` x ``patch_size``
    patches, each projected to ``hidden_size`` features, and ``num_hidden_layers`` pre-LayerNorm blocks (token mixer,
    then MLP) process the grid of patch tokens.

    Args:
        image_size: side of the (square) training image in pixels; must be a multiple of ``patch_size``. Other sizes
            work with ``interpolate_pos_encoding=True`` (positions and Fourier filters are resized).
        patch_size: side of a square patch in pixels.
        num_channels: channels of ``pixel_values`` (1 for grayscale, 3 for RGB).
        hidden_size: width of every token.
        num_hidden_layers: number of blocks.
        mlp_ratio: the MLP's inner width relative to ``hidden_size`` (the papers' and timm's way to say it); 4.0 unless
            ``intermediate_size`` is given, then ``intermediate_size / hidden_size``.
        intermediate_size: the MLP's inner width, saved like every transformers config's; ``round(hidden_size *
            mlp_ratio)`` unless given. Giving both requires that they agree. (Configs saved before this field existed
            hold only ``mlp_ratio`` and load unchanged.)
        hidden_act: MLP activation (any name of ``transformers.activations.ACT2FN``; the papers use ``"gelu"``).
        hidden_dropout_prob: dropout on embeddings and inside the MLP.
        drop_path_rate: stochastic-depth rate of the LAST block; block i drops with ``rate * i / (depth - 1)``.
        layer_norm_eps: epsilon of every LayerNorm.
        initializer_range: std of the truncated-normal initialisation of linear/conv weights and embeddings.
        intermediate_size_per_layer: MLP width of each block after structured pruning (``hf_models.pruning``);
            ``None`` (default, never written to config.json) = ``intermediate_size`` everywhere.
        num_labels / id2label / label2id / problem_type: the classification head, as for every transformers model.
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        mlp_ratio: float | None = None,
        intermediate_size: int | None = None,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        intermediate_size_per_layer: list[int] | None = None,
        **kwargs,
    ):
        for name, value in (
            ("image_size", image_size),
            ("patch_size", patch_size),
            ("num_channels", num_channels),
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
        ):
            check_int(name, value)
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size}): the image is cut into "
                "whole patches"
            )
        if intermediate_size is None:
            mlp_ratio = 4.0 if mlp_ratio is None else mlp_ratio
            if not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0 or round(hidden_size * mlp_ratio) < 1:
                raise ValueError(f"mlp_ratio must be positive (at least one MLP unit), got {mlp_ratio!r}")
            intermediate_size = round(hidden_size * mlp_ratio)
        else:
            check_int("intermediate_size", intermediate_size)
            if mlp_ratio is None:
                mlp_ratio = intermediate_size / hidden_size
            elif not isinstance(mlp_ratio, (int, float)) or round(hidden_size * mlp_ratio) != intermediate_size:
                raise ValueError(
                    f"intermediate_size ({intermediate_size}) disagrees with mlp_ratio ({mlp_ratio!r}) times hidden_size "
                    f"({hidden_size}); give one of them"
                )
        check_choice("hidden_act", hidden_act, ACT2FN)
        check_probability("hidden_dropout_prob", hidden_dropout_prob)
        check_probability("drop_path_rate", drop_path_rate)
        if not layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {layer_norm_eps!r}")
        if not initializer_range > 0:
            raise ValueError(f"initializer_range must be positive, got {initializer_range!r}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.mlp_ratio = float(mlp_ratio)
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        check_per_layer_sizes("intermediate_size_per_layer", intermediate_size_per_layer, num_hidden_layers)
        if intermediate_size_per_layer is not None:  # unpruned configs serialise exactly as before pruning existed
            self.intermediate_size_per_layer = intermediate_size_per_layer
        super().__init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """``from_pretrained(folder, mlp_ratio=3.0)`` (or ``intermediate_size=...``) re-derives the other field instead
        of keeping the saved one, which would disagree."""
        overrides = {key: kwargs.pop(key) for key in ("mlp_ratio", "intermediate_size") if key in kwargs}
        if overrides:
            config_dict = {k: v for k, v in config_dict.items() if k not in ("mlp_ratio", "intermediate_size")}
            config_dict.update(overrides)
        return super().from_dict(config_dict, **kwargs)

    @property
    def grid_size(self) -> int:
        """Patches per side of a training image."""
        return self.image_size // self.patch_size
