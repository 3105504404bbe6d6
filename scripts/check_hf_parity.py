"""Prove that nlu's encoder is the same computation as transformers' BERT.

    python scripts/check_hf_parity.py                          # fp32 on the CPU
    python scripts/check_hf_parity.py --device cuda --bf16     # both sides under bf16 autocast on a GPU

Prints the difference for every output in both directions (transformers → nlu, nlu → transformers)
and exits non-zero if any exceeds the tolerance: the max absolute difference in fp32 (TF32 off),
relative to the largest fp32 output under bf16 (nlu.parity.compare_with_transformers).
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers.utils import logging as transformers_logging

from nlu.parity import PARITY_CONFIGS, compare_with_transformers

TOLERANCES = {False: 1e-5, True: 5e-2}
"""fp32 and bf16; bf16 keeps 8 significant bits, so 5% of the largest output leaves room for the sides
rounding at different places and nothing for a wrong computation."""


DEVICE_CONFIG = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     max_position_embeddings=128, type_vocab_size=2)
"""On a GPU also a model with 64-wide heads on a batch of 8 × 96: the sizes at which its attention
kernels and tensor-core paths are the ones real models take (the small configs may take others)."""


def check(device: str = "cpu", bf16: bool = False, tolerance: float | None = None) -> dict:
    """Every config's differences, the worst and whether it is within the tolerance; fp32 with TF32
    off (restored after), so that the GPU computes what the CPU does."""
    tolerance = TOLERANCES[bf16] if tolerance is None else tolerance
    runs = {name: (options, 3, 13 if name == "tiny" else 17) for name, options in PARITY_CONFIGS.items()}
    if torch.device(device).type != "cpu":
        runs["head size 64, 8 × 96"] = (DEVICE_CONFIG, 8, 96)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        differences = {name: compare_with_transformers(options, batch, length, device=device, bf16=bf16)
                       for name, (options, batch, length) in runs.items()}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    worst = max(value for values in differences.values() for value in values.values())
    return {"device": device, "bf16": bf16, "tolerance": tolerance, "differences": differences, "worst": worst,
            "ok": worst <= tolerance, "configs": {name: options for name, (options, _, _) in runs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="both sides under bf16 autocast")
    parser.add_argument("--tolerance", type=float, help="default 1e-5 (fp32), 5e-2 of the largest output (bf16)")
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    result = check(args.device, args.bf16, args.tolerance)
    for name, differences in result["differences"].items():
        print(f"config {name}: {result['configs'][name]}")
        for output, difference in differences.items():
            print(f"  {output:<55} {difference:.2e}  {'ok' if difference <= result['tolerance'] else 'FAIL'}")
    print(f"{'PASS' if result['ok'] else 'FAIL'}: worst {result['worst']:.2e} (tolerance {result['tolerance']:.0e}, "
          f"{'bf16 autocast, relative' if args.bf16 else 'fp32, absolute'}, {args.device})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
