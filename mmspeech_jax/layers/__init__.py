"""Layers: attention, Transformer (FFT) and Conformer blocks, fusion, conditioning, adapters, hypernetwork,
convolutions.

Names load on first use (PEP 562): importing the package imports none of its modules. Defined in several modules, so
reached through their module only: `uses_winograd`.
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "Adapter": "conformer", "AdapterHypernetwork": "hypernetwork", "BottleneckFusion": "fusion",
    "BottleneckFusionConfig": "fusion", "ConcatFusion": "fusion", "ConditionTokens": "fusion",
    "ConformerBlock": "conformer", "ConformerBlockConfig": "conformer", "ConformerStack": "conformer",
    "Conv1D": "winograd", "Conv2dSubsampling": "subsampling", "ConvolutionModule": "conformer",
    "CrossAttentionFusion": "fusion", "Dense": "dense", "DepthwiseConv1D": "depthwise", "Dropout": "dropout",
    "FFTBlock": "transformer", "FFTBlockConfig": "transformer", "FFTStack": "transformer", "FeedForward": "conformer",
    "FiLM": "fusion", "GatedCrossAttention": "fusion", "LoRADense": "attention", "MultiHeadCrossAttention": "fusion",
    "MultiHeadSelfAttention": "attention", "PlainAdapters": "adapter", "ReferenceEncoder": "conditioning",
    "SpeakerEmbedding": "conditioning", "StridedConv2d": "subsampling", "VectorEncoder": "conditioning",
    "adapter_at": "adapter", "adapter_forward": "adapter", "as_condition_list": "fusion", "check_ids": "ids",
    "combine": "winograd", "apply_transform": "winograd", "combine_conditions": "conditioning", "dense_matmul": "dense",
    "depthwise_conv1d": "depthwise", "direct_conv1d": "winograd", "hash_dropout": "dropout", "keep_mask": "dropout",
    "lowbias32": "dropout", "output_size": "strided_winograd", "overlap_add": "strided_winograd",
    "pool_condition": "fusion", "pooled_conditions": "fusion", "relative_offsets_encoding": "positional",
    "relative_position_scores": "attention", "relative_shift": "attention", "sinusoidal_encoding": "positional",
    "sinusoidal_positions": "positional", "split_sites": "adapter", "strided_conv2d": "strided_winograd",
    "subsampled_length": "subsampling", "table_ids": "ids", "transforms": "winograd",
    "valid_correlation": "strided_winograd", "winograd_conv1d": "winograd",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
