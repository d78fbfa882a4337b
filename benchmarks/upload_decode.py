"""Cost of decoding one upload (``workbench.data.decode.decode_image``), at and above the pixel budget.

Each case: one process writes the image as a PNG/JPEG file, a fresh one reads the file and
decodes it to a 28 x 28 grayscale input; it prints the file size, the outcome (decoded, or
the refusal's first words), the time and the rise of peak resident memory while decoding.

Usage: python benchmarks/upload_decode.py
"""
from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {  # name -> (width, height, PIL mode, format)
    "6000x4000 RGB JPEG (24 MP, under the budget)": (6000, 4000, "RGB", "JPEG"),
    "6000x4000 RGB PNG (24 MP, under the budget)": (6000, 4000, "RGB", "PNG"),
    "5000x5000 16-bit gray PNG (25 MP, at the budget)": (5000, 5000, "I;16", "PNG"),
    "13300x13300 gray PNG (177 MP, refused)": (13300, 13300, "L", "PNG"),
}


def write(case: str, path: Path) -> None:
    """The case's image, encoded, at ``path`` (a smooth pattern: small files, as a bomb would be)."""
    import numpy as np
    from PIL import Image

    w, h, mode, fmt = CASES[case]
    rows = np.arange(h, dtype=np.uint32)[:, None] * 7 + np.arange(w, dtype=np.uint32)[None, :] * 3
    if mode == "I;16":
        img = Image.fromarray((rows % 65536).astype(np.uint16))
    else:
        arr = (rows % 256).astype(np.uint8)
        img = Image.fromarray(np.stack([arr] * 3, -1) if mode == "RGB" else arr)
    img.save(path, format=fmt)


def one(case: str, path: Path) -> None:
    from workbench.data.decode import decode_image

    data = path.read_bytes()
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        decode_image(data, path.name, 1, (28, 28))
        outcome = "decoded"
    except ValueError as err:
        outcome = "refused (" + str(err)[:50] + "...)"
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{case}: {len(data) / 1e6:.2f} MB file, {outcome}, {dt:.2f} s, peak +{(r1 - r0) / 1024:.0f} MiB")


def main() -> int:
    if len(sys.argv) > 3 and sys.argv[1] == "--write":
        write(sys.argv[2], Path(sys.argv[3]))
        return 0
    if len(sys.argv) > 3 and sys.argv[1] == "--one":
        one(sys.argv[2], Path(sys.argv[3]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(CASES):
            path = Path(tmp) / f"upload{k}.{CASES[case][3].lower()}"
            subprocess.run([sys.executable, __file__, "--write", case, str(path)], check=True)
            subprocess.run([sys.executable, __file__, "--one", case, str(path)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
