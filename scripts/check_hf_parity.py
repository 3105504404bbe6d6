"""Prove that nlu's encoder is the same computation as transformers' BERT.

    python scripts/check_hf_parity.py                          # fp32 on the CPU
    python scripts/check_hf_parity.py --device cuda --bf16     # both sides under bf16 autocast on a GPU

Prints the difference for every output in both directions (transformers → nlu, nlu → transformers)
and exits non-zero if any exceeds the tolerance: the max absolute difference in fp32 (TF32 off),
relative to the largest fp32 output under bf16 (nlu.parity.check).
"""

from __future__ import annotations

import argparse
import sys

from transformers.utils import logging as transformers_logging

from nlu.parity import check


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
