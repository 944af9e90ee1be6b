"""Configuration of the Adaptive Fourier Neural Operator (AFNO) of Guibas et al. (2022), "Adaptive Fourier Neural
Operators: Efficient Token Mixers for Transformers"."""

from .configuration_vision import PatchImageConfig
from .validation import check_int


class AFNOConfig(PatchImageConfig):
    """AFNO: the token mixer is a 2-layer complex MLP applied to every Fourier mode of the token grid, with
    block-diagonal weights shared across modes, soft-thresholding for sparsity and optional truncation of high modes.

    Defaults: hidden 384, 12 layers, 8 blocks at 224 pixels, patch 16. Besides the fields of ``PatchImageConfig``:

    Args:
        num_blocks: the channels are split into this many blocks, each mixed by its own complex weight matrices
            (block-diagonal weights); must divide ``hidden_size``.
        hidden_size_factor: the spectral MLP's inner width per block is ``hidden_size_factor * block size``.
        sparsity_threshold: lambda of the soft-shrink applied to the real and imaginary parts of the mixed modes;
            0 disables it.
        hard_thresholding_fraction: fraction of the lowest frequencies kept along each axis (1.0 keeps all); the
            others are set to zero without being computed.
        spectral_residual: ``True`` (default of new configurations) is the block of the official AFNO code
            (NVlabs/AFNO-transformer, ``AFNO2D.forward`` returns ``x + bias`` and ``Block`` adds the block input
            again, its "double skip"): ``x = x + Filter(LN(x)) + LN(x)``, then ``x = x + DropPath(MLP(LN(x)))``, with
            no stochastic depth on the filter branch. ``False`` is this package's first version,
            ``x = x + DropPath(Filter(LN(x)))`` then the MLP branch; a saved config.json without the field predates
            it and loads as ``False``, so old checkpoints compute what they were trained with.
    """

    model_type = "afno"

    def __init__(
        self,
        hidden_size: int = 384,
        num_blocks: int = 8,
        hidden_size_factor: int = 1,
        sparsity_threshold: float = 0.01,
        hard_thresholding_fraction: float = 1.0,
        spectral_residual: bool = True,
        **kwargs,
    ):
        check_int("num_blocks", num_blocks)
        check_int("hidden_size_factor", hidden_size_factor)
        if isinstance(hidden_size, int) and hidden_size % num_blocks != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_blocks ({num_blocks})")
        if not isinstance(sparsity_threshold, (int, float)) or sparsity_threshold < 0:
            raise ValueError(f"sparsity_threshold must be >= 0, got {sparsity_threshold!r}")
        if not isinstance(hard_thresholding_fraction, (int, float)) or not 0 < hard_thresholding_fraction <= 1:
            raise ValueError(f"hard_thresholding_fraction must be in (0, 1], got {hard_thresholding_fraction!r}")
        if not isinstance(spectral_residual, bool):
            raise ValueError(f"spectral_residual must be True or False, got {spectral_residual!r}")
        self.num_blocks = num_blocks
        self.hidden_size_factor = hidden_size_factor
        self.sparsity_threshold = float(sparsity_threshold)
        self.hard_thresholding_fraction = float(hard_thresholding_fraction)
        self.spectral_residual = spectral_residual
        super().__init__(hidden_size=hidden_size, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """A saved configuration without ``spectral_residual`` was written before the field existed, by code without
        the spectral residual: it loads as ``spectral_residual=False`` (unless the caller passes the field)."""
        if "spectral_residual" not in config_dict and "spectral_residual" not in kwargs:
            config_dict = {**config_dict, "spectral_residual": False}
        return super().from_dict(config_dict, **kwargs)
