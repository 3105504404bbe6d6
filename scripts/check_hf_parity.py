"""Prove that nlu's encoder is the same computation as transformers' BERT.

    python scripts/check_hf_parity.py

Prints the max absolute difference for every output in both directions (transformers → nlu,
nlu → transformers) and exits non-zero if any exceeds the tolerance (fp32, eval mode).
"""

from __future__ import annotations

import argparse
import sys

from transformers.utils import logging as transformers_logging

from nlu.parity import PARITY_CONFIGS, compare_with_transformers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    transformers_logging.disable_progress_bar()
    worst = 0.0
    for name, options in PARITY_CONFIGS.items():
        print(f"config {name}: {options}")
        for output, difference in compare_with_transformers(options, length=13 if name == "tiny" else 17).items():
            status = "ok" if difference <= args.tolerance else "FAIL"
            print(f"  {output:<45} max |diff| = {difference:.2e}  {status}")
            worst = max(worst, difference)
    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"{verdict}: worst max |diff| {worst:.2e} (tolerance {args.tolerance:.0e})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
