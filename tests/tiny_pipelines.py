"""Tiny random-weight diffusers pipelines, written to disk in the diffusers layout, so the
diffusers backend's real loading code can be tested on a CPU without downloading anything.

The configs follow diffusers' own tiny test pipelines; the CLIP tokenizer is built from a small
vocab.json and merges.txt written here.
"""

from __future__ import annotations

import json
from pathlib import Path


def tokenizer_for(folder: Path):
    """A CLIPTokenizer from a vocab.json and merges.txt written to *folder*."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for char in letters:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=77,
        pad_token="!",
    )


def tiny_sdxl(folder: Path, *, seed: int = 0) -> Path:
    """A StableDiffusionXLPipeline with a few thousand parameters per part, saved to *folder*."""
    build_tiny_sdxl(folder / "_tokenizer", seed=seed).save_pretrained(folder)
    return folder


def tiny_unet(seed: int | None = None):
    """The tiny pipeline's UNet (with fresh random weights from *seed*, when given)."""
    import torch
    from diffusers import UNet2DConditionModel

    if seed is not None:
        torch.manual_seed(seed)
    # Sized for speed on a CPU, where the cost is the number of operations at the latents' full
    # size: four channels, attention only at 1/8 of the latent side (256 tokens for 1024x1024).
    # About 8 ms a step at 1024x1024 on two cores.
    return UNet2DConditionModel(
        block_out_channels=(4, 4, 4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 2, 2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1, 1, 1),
        projection_class_embeddings_input_dim=64,  # 6 * addition_time_embed_dim + projection_dim
        cross_attention_dim=32,
        norm_num_groups=4,
    )


def save_unet_weights(path: Path, *, seed: int) -> Path:
    """A distilled-UNet file, as ByteDance ships SDXL Lightning's: a safetensors state dict."""
    from safetensors.torch import save_file

    save_file(tiny_unet(seed).state_dict(), str(path))
    return path


def build_tiny_sdxl(tokenizer_folder: Path, *, seed: int = 0):
    """The tiny pipeline, in memory; its tokenizer files go to *tokenizer_folder*."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = tiny_unet()
    vae = AutoencoderKL(  # four blocks: latents are 1/8 of the image side, as in SDXL
        block_out_channels=[2, 2, 2, 2],
        layers_per_block=0,  # one resnet per decoder block
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=32,
        mid_block_add_attention=False,  # attention over 1/8-size latents is most of the cost
    )
    text_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=64,
        hidden_act="gelu",
        projection_dim=16,
        max_position_embeddings=77,
    )
    tokenizer = tokenizer_for(tokenizer_folder)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        ),
    )
