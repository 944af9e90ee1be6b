"""The Vision Transformer (ViT) of Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words", as a Hugging Face model.

Read top to bottom: embeddings (patches + CLS token + learned positions, resized bicubically for other image sizes),
the bare model (pre-LN blocks of the package's shared multi-head attention and MLP, final LayerNorm; the pooled
output is the CLS token), and the image classifier. Parameter layout mirrors transformers' ``ViTModel`` closely
enough that ``convert_vit_from_transformers.py`` maps its checkpoints onto this model one-to-one.
"""

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.output_capturing import capture_outputs

from .attention import MultiHeadAttention
from .attention_registry import attention_class
from .performer import init_random_features
from .configuration_vit import VisionTransformerConfig
from .layers import (
    ImageClassificationMixin,
    MixerBlock,
    PatchEmbedding,
    VisionPreTrainedModel,
    check_image_size,
    drop_path_rates,
    init_patch_model_weights,
    pixel_values_in_model_dtype,
    resize_grid,
)


class VisionTransformerEmbeddings(nn.Module):
    """``[CLS; patch_1 ... patch_N] + positions``, then dropout (section 3.1 of the paper)."""

    def __init__(self, config: VisionTransformerConfig):
        super().__init__()
        self.config = config
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = PatchEmbedding(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.grid_size**2 + 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        """Positions for a ``height x width`` patch grid: the CLS position as is, the patch positions resized
        bicubically from the training grid (as DINO and transformers' ViT do), so a model trained at one image size
        runs at another."""
        grid = self.config.grid_size
        cls_position, patch_positions = self.position_embeddings[:, :1], self.position_embeddings[0, 1:]
        patch_positions = resize_grid(patch_positions.reshape(grid, grid, -1), height, width)
        return torch.cat((cls_position, patch_positions.reshape(1, height * width, -1)), dim=1)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        check_image_size(pixel_values, self.config.image_size, interpolate_pos_encoding)
        patches = self.patch_embeddings(pixel_values)
        batch_size, height, width, _ = patches.shape
        tokens = torch.cat((self.cls_token.expand(batch_size, -1, -1), patches.flatten(1, 2)), dim=1)
        return self.dropout(tokens + self.interpolate_pos_encoding(height, width))


class VisionTransformerPreTrainedModel(VisionPreTrainedModel):
    config_class = VisionTransformerConfig
    base_model_prefix = "vit"
    _supports_sdpa = True
    # output_hidden_states records every block's output, output_attentions every attention layer's weights
    _can_record_outputs = {"hidden_states": MixerBlock, "attentions": MultiHeadAttention}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """ViT/DeiT initialisation: truncated normal weights and positions/CLS token, zero biases, unit LayerNorms;
        performer layers draw their random features."""
        init_patch_model_weights(module, self.config.initializer_range)
        init_random_features(module)
        if isinstance(module, VisionTransformerEmbeddings):
            init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)
            init.trunc_normal_(module.cls_token, std=self.config.initializer_range)


class VisionTransformerModel(VisionTransformerPreTrainedModel):
    """Embeddings -> pre-LN blocks (self-attention, MLP) -> LayerNorm. ``last_hidden_state`` is the normalised
    sequence ``(batch, 1 + patches, hidden)``; ``pooler_output`` its CLS token, which the classifier reads."""

    def __init__(self, config: VisionTransformerConfig):
        super().__init__(config)
        self.embeddings = VisionTransformerEmbeddings(config)
        self.layers = nn.ModuleList(
            MixerBlock(config, attention_class(config)(config, layer_idx=index), rate, layer_idx=index)
            for index, rate in enumerate(drop_path_rates(config))
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        """``hidden_states`` (with ``output_hidden_states``) are the embeddings and every block's output, before the
        final LayerNorm, as in transformers' ViT; ``output_attentions`` runs the attention eagerly to return its
        weights."""
        pixel_values = pixel_values_in_model_dtype(pixel_values, self.get_input_embeddings())
        hidden_states = self.embeddings(pixel_values, interpolate_pos_encoding)
        for layer in self.layers:
            hidden_states = layer(hidden_states, **kwargs)
        sequence_output = self.layernorm(hidden_states)
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=sequence_output[:, 0])


class VisionTransformerForImageClassification(ImageClassificationMixin, VisionTransformerPreTrainedModel):
    """ViT with a linear classifier on the final CLS token."""

    def __init__(self, config: VisionTransformerConfig):
        super().__init__(config)
        self.vit = VisionTransformerModel(config)
        self.init_classification_head(config)
        self.post_init()
