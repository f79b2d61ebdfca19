"""What the fuzz targets share: their command line and how they write seeds.

    python tests/fuzz/fuzz_X.py [atheris options] [CORPUS_DIR]
    python tests/fuzz/fuzz_X.py --write-seeds DIR      (targets that have seeds)
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import atheris


def write_seed(directory: Path, seed: bytes) -> None:
    (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def main(test_one_input: Callable[[bytes], None],
         write_seeds: Callable[[Path], None] | None = None) -> None:
    if write_seeds is not None and sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
