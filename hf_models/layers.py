"""Building blocks the image models (ViT, GFNet, AFNO) share, written once.

All three are isotropic: a patch embedding turns the image into a grid of tokens, positions are added, and a stack
of identical pre-LayerNorm blocks alternates a *token mixer* (attention for ViT, a Fourier-domain filter for GFNet and
AFNO) with a per-token MLP. Only the token mixer differs, so a family is its mixer plus a few lines of glue.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .validation import per_layer_size


class PatchEmbedding(nn.Module):
    """Cuts the image into non-overlapping ``patch_size`` x ``patch_size`` patches and projects each linearly to
    ``hidden_size`` features. A convolution with kernel = stride = patch size IS that per-patch linear map, done in
    one call. Returns the grid channels-last: ``(batch, height / patch, width / patch, hidden)``."""

    def __init__(self, config):
        super().__init__()
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be (batch, channels, height, width), got shape {tuple(pixel_values.shape)}")
        _, channels, height, width = pixel_values.shape
        if channels != self.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels but the model expects num_channels={self.num_channels}"
            )
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of patch_size={self.patch_size}; resize it first "
                "(the image processor does)"
            )
        return self.projection(pixel_values).permute(0, 2, 3, 1)


def resize_grid(grid: torch.Tensor, height: int, width: int, mode: str = "bicubic") -> torch.Tensor:
    """Resizes a channels-last ``(h, w, channels)`` table (learned positions, filter responses) to
    ``(height, width, channels)`` by interpolation; returned unchanged when the size already matches."""
    if grid.shape[:2] == (height, width):
        return grid
    resized = nn.functional.interpolate(
        grid.permute(2, 0, 1).unsqueeze(0), size=(height, width), mode=mode, align_corners=False
    )
    return resized.squeeze(0).permute(1, 2, 0)


def _dft_matrices(n: int, frequencies: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of ``2 pi k j / n`` for ``k < frequencies``, ``j < n``: the real DFT matrices."""
    k = torch.arange(frequencies, dtype=torch.float64, device=like.device)[:, None]
    j = torch.arange(n, dtype=torch.float64, device=like.device)[None, :]
    angle = (2 * math.pi / n) * k * j
    return angle.cos().to(like.dtype), angle.sin().to(like.dtype)


def rfft2_ortho(grid: torch.Tensor) -> torch.Tensor:
    """``torch.fft.rfft2(grid, dim=(1, 2), norm="ortho")`` of a real ``(batch, height, width, channels)`` grid.

    While exporting to ONNX it is written as products with the real DFT matrices instead: onnxruntime's CPU ``DFT``
    kernel made the exported GFNet/AFNO 3-15x slower than PyTorch eager, while at these token grids (7 x 7 to
    14 x 14) the products are a few small matrix multiplications, equal to the FFT within float rounding."""
    if not torch.compiler.is_exporting():
        return torch.fft.rfft2(grid, dim=(1, 2), norm="ortho")
    height, width = grid.shape[1], grid.shape[2]
    cos_w, sin_w = _dft_matrices(width, width // 2 + 1, grid)
    cos_h, sin_h = _dft_matrices(height, height, grid)
    # along the width (real input): (batch, height, frequencies, channels), then the height axis moved next to last
    real, imag = (cos_w @ grid).transpose(1, 2), (-(sin_w @ grid)).transpose(1, 2)
    scale = 1 / math.sqrt(height * width)
    real, imag = (cos_h @ real + sin_h @ imag) * scale, (cos_h @ imag - sin_h @ real) * scale
    return torch.view_as_complex(torch.stack((real.transpose(1, 2), imag.transpose(1, 2)), dim=-1))


def irfft2_ortho(spectrum: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``torch.fft.irfft2(spectrum, s=size, dim=(1, 2), norm="ortho")``; while exporting, as matrix products (see
    :func:`rfft2_ortho`). The imaginary parts of the zero and Nyquist columns are ignored, as the FFT does."""
    if not torch.compiler.is_exporting():
        return torch.fft.irfft2(spectrum, s=size, dim=(1, 2), norm="ortho")
    height, width = size
    real, imag = (part.transpose(1, 2) for part in torch.view_as_real(spectrum).unbind(-1))
    cos_h, sin_h = _dft_matrices(height, height, real)
    real, imag = (cos_h @ real - sin_h @ imag).transpose(1, 2), (sin_h @ real + cos_h @ imag).transpose(1, 2)
    frequencies = real.shape[2]
    cos_w, sin_w = _dft_matrices(width, frequencies, real)
    # each column but the zero (and, for an even width, the Nyquist) one stands for itself and its conjugate
    counts = torch.full((frequencies, 1), 2.0, dtype=real.dtype, device=real.device)
    counts[0] = 1
    if width % 2 == 0:
        counts[-1] = 1
    return ((cos_w * counts).T @ real - (sin_w * counts).T @ imag) / math.sqrt(height * width)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, drops a residual branch for whole samples with probability
    ``drop_prob`` and scales the kept ones by ``1 / (1 - drop_prob)``, so the expectation is unchanged."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)
        mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * mask / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def drop_path_rates(config) -> list[float]:
    """The linear stochastic-depth schedule of DeiT/GFNet: 0 for the first block, ``drop_path_rate`` for the last."""
    depth = config.num_hidden_layers
    return [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]


class Mlp(nn.Module):
    """Per-token MLP: Linear -> activation -> dropout -> Linear -> dropout. A pruned model records block
    ``layer_idx``'s width in ``config.intermediate_size_per_layer`` (``hf_models.pruning``)."""

    sizes_field = "intermediate_size_per_layer"

    def __init__(self, config, layer_idx: int | None = None):
        super().__init__()
        self.layer_idx = layer_idx
        intermediate_size = per_layer_size(config, self.sizes_field, layer_idx, config.intermediate_size)
        self.fc1 = nn.Linear(config.hidden_size, intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(self.activation(self.fc1(hidden_states)))))


class MixerBlock(GradientCheckpointingLayer):
    """One pre-LayerNorm block around a token mixer, on a token sequence ``(batch, tokens, hidden)``.

    ``mixer_residual=True`` (ViT, AFNO): ``x = x + DropPath(Mixer(LN(x)))`` then ``x = x + DropPath(MLP(LN(x)))``.
    ``mixer_residual=False`` (GFNet, as in its paper's code): one residual around both,
    ``x = x + DropPath(MLP(LN(Mixer(LN(x)))))``. ``mixer_drop_path=False`` (AFNO's official code) leaves the mixer
    branch without stochastic depth.

    A token mixer maps normalised tokens to ``(mixed tokens, attention weights or None)`` and keeps their shape; the
    keyword arguments of the call (``output_attentions``, the Fourier mixers' ``grid_size``) go to it. The block's
    output is what ``output_hidden_states`` records, and, as a ``GradientCheckpointingLayer``, what
    ``gradient_checkpointing_enable()`` recomputes in the backward pass instead of storing its activations.
    """

    def __init__(
        self,
        config,
        token_mixer: nn.Module,
        drop_path: float,
        mixer_residual: bool = True,
        mixer_drop_path: bool = True,
        layer_idx: int | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.token_mixer = token_mixer
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = Mlp(config, layer_idx)
        self.drop_path = DropPath(drop_path)
        self.mixer_residual = mixer_residual
        self.mixer_drop_path = mixer_drop_path

    def forward(self, hidden_states: torch.Tensor, **mixer_kwargs) -> torch.Tensor:
        mixed, _ = self.token_mixer(self.norm1(hidden_states), **mixer_kwargs)
        if self.mixer_residual:
            hidden_states = hidden_states + (self.drop_path(mixed) if self.mixer_drop_path else mixed)
            return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))
        return hidden_states + self.drop_path(self.mlp(self.norm2(mixed)))


class VisionPreTrainedModel(PreTrainedModel):
    """The base of ViT's, GFNet's and AFNO's ``PreTrainedModel``: images in, ``MixerBlock`` stacks that
    ``device_map`` must not split and that checkpoint gradients. Each family adds its ``config_class``,
    ``base_model_prefix`` and an ``_init_weights`` for its own parameters."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["MixerBlock"]
    supports_gradient_checkpointing = True  # the blocks are GradientCheckpointingLayers


@torch.no_grad()
def init_patch_model_weights(module: nn.Module, std: float) -> None:
    """Initialisation of ViT/DeiT/GFNet/AFNO: truncated normal (std ``initializer_range``) for linear and patch
    projections and for the positions of the ``FourierGridEncoder`` (GFNet and AFNO), zero biases, unit LayerNorms.
    Family-specific parameters (ViT's positions and CLS token, Fourier filters) are initialised by each family's
    ``_init_weights``."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        init.ones_(module.weight)
        init.zeros_(module.bias)
    elif isinstance(module, FourierGridEncoder):
        init.trunc_normal_(module.position_embeddings, std=std)


class FourierGridEncoder(nn.Module):
    """The body GFNet and AFNO share (GFNet's isotropic model): patch embedding + learned positions, blocks that mix
    tokens with ``make_mixer(config)``, a final LayerNorm and global average pooling over the tokens.

    The blocks carry the tokens as a sequence ``(batch, height * width, hidden)`` in row-major order, as ViT's do;
    each Fourier mixer views them as the ``grid_size`` grid for its FFT. So the recorded hidden states are the very
    tensors the next block reads (and receive gradients), not reshaped copies.

    Images of another size than ``config.image_size`` need ``interpolate_pos_encoding=True``: the position table is
    resized bicubically, and the Fourier mixers adapt to the new grid themselves.
    """

    def __init__(self, config, make_mixer, mixer_residual: bool, mixer_drop_path: bool = True):
        super().__init__()
        self.config = config
        self.patch_embeddings = PatchEmbedding(config)
        self.position_embeddings = nn.Parameter(torch.zeros(config.grid_size, config.grid_size, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(
            MixerBlock(config, make_mixer(config), rate, mixer_residual, mixer_drop_path, index)
            for index, rate in enumerate(drop_path_rates(config))
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, **kwargs
    ) -> BaseModelOutputWithPooling:
        check_image_size(pixel_values, self.config.image_size, interpolate_pos_encoding)
        grid = self.patch_embeddings(pixel_values)
        height, width = grid.shape[1:3]
        hidden_states = self.dropout(grid + resize_grid(self.position_embeddings, height, width)).flatten(1, 2)
        for layer in self.layers:
            hidden_states = layer(hidden_states, grid_size=(height, width), **kwargs)
        sequence_output = self.layernorm(hidden_states)
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=sequence_output.mean(dim=1))


class FourierGridModelMixin:
    """``forward`` of ``GFNetModel`` and ``AFNOModel``: both are a ``FourierGridEncoder`` held as ``self.encoder``.

    ``return_dict``, ``output_hidden_states`` (a flag or layer indices) and ``output_attentions`` come from the call
    or else the config, through transformers' ``capture_outputs``, which records the blocks' outputs with hooks
    (``_can_record_outputs``). Fourier mixers have no attention weights, so there are no attentions to record."""

    _can_record_outputs = {"hidden_states": MixerBlock}

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.patch_embeddings

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        pixel_values = pixel_values_in_model_dtype(pixel_values, self.get_input_embeddings())
        return self.encoder(pixel_values, interpolate_pos_encoding, **kwargs)


def pixel_values_in_model_dtype(pixel_values: torch.Tensor | None, patch_embeddings: PatchEmbedding) -> torch.Tensor:
    """The images a base model's ``forward`` got, in the dtype of its patch projection: a bf16/fp16 model accepts the
    fp32 tensors image processors give. ``pixel_values`` is optional only because transformers' signatures are."""
    if pixel_values is None:
        raise ValueError("pixel_values is required")
    return pixel_values.to(patch_embeddings.projection.weight.dtype)


def check_image_size(pixel_values: torch.Tensor, image_size: int, interpolate_pos_encoding: bool) -> None:
    """Images of another size than the training size are an error unless the caller asks for interpolation."""
    height, width = pixel_values.shape[-2:]
    if not interpolate_pos_encoding and (height, width) != (image_size, image_size):
        raise ValueError(
            f"input image size ({height}x{width}) differs from the model's image_size ({image_size}x{image_size}); "
            "pass interpolate_pos_encoding=True to resize the position embeddings (and Fourier filters)"
        )


class ImageClassificationMixin:
    """``forward`` of every ``...ForImageClassification`` here: the base model's pooled features (CLS token for ViT,
    token mean for GFNet/AFNO) -> dropout -> ``self.classifier``; ``labels`` give a loss chosen by
    ``config.problem_type`` (cross-entropy, BCE-with-logits or MSE) through transformers' ``self.loss_function``.
    ``return_dict=False`` (call or config) gives a tuple, as transformers' ``can_return_tuple`` heads do."""

    # The loss is a mean over the batch; without this Trainer would pass num_items_in_batch and skip dividing the
    # loss by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def init_classification_head(self, config) -> None:
        """The head every family's ``__init__`` builds after its base model: dropout and a linear classifier on the
        pooled features (attribute names as in transformers' ViT, so state-dict keys are ``dropout``/``classifier``)."""
        self.num_labels = config.num_labels
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward_features(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """timm's ``forward_features``: the final LayerNorm's tokens ``(batch, tokens, hidden)`` before pooling (CLS
        token first for ViT; the patch grid in row-major order for GFNet/AFNO)."""
        return self.base_model(
            pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True
        ).last_hidden_state

    def reset_classifier(self, num_labels: int, id2label: dict[int, str] | None = None) -> None:
        """timm's ``reset_classifier``: a freshly initialised head for ``num_labels`` classes (0: no head, the logits
        are the pooled features), on the old head's device and dtype, for fine-tuning on another label set.
        ``config.num_labels`` / ``id2label`` / ``label2id`` follow (``LABEL_i`` names unless ``id2label`` is given),
        so a saved model reloads with the new head."""
        if id2label is not None and len(id2label) != num_labels:
            raise ValueError(f"id2label has {len(id2label)} entries but num_labels is {num_labels}")
        like = next(self.classifier.parameters(), self.base_model.get_input_embeddings().projection.weight)
        self.config.num_labels = num_labels
        if id2label is not None:
            self.config.id2label = dict(id2label)
            self.config.label2id = {label: index for index, label in self.config.id2label.items()}
        self.num_labels = num_labels
        if num_labels > 0:
            self.classifier = nn.Linear(self.config.hidden_size, num_labels, device=like.device, dtype=like.dtype)
            init_patch_model_weights(self.classifier, self.config.initializer_range)
        else:
            self.classifier = nn.Identity()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        # return_dict=True: the head reads fields of the base output even when the config asks for tuples
        outputs = self.base_model(
            pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True, **kwargs
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
