"""The embedded default: the whole pipeline on synthetic faces, on CPU, in minutes.

``celebseg demo`` runs synth -> prepare -> stats -> train -> evaluate -> figures and prints a
summary table; ``OUT/results.json`` has the schema of ``celebseg evaluate``.
:func:`smoke_workspace` is the small shared dataset the notebooks use with ``SMOKE = True``.

>>> from celebseg_utils.demo import smoke_workspace
>>> ws = smoke_workspace("/tmp/celebseg-smoke", count=8, image_size=64)  # doctest: +SKIP
>>> sorted(ws)  # doctest: +SKIP
['data_root', 'prepared']
"""

from __future__ import annotations

import json
from pathlib import Path

from celebseg_utils import layout


def smoke_workspace(root, count: int = 48, image_size: int = 64, seed: int = 0,
                    progress: bool = False) -> dict:
    """A synthetic raw folder and its prepared twin under ``root``, made once and reused.

    Returns ``{"data_root": ROOT/raw, "prepared": ROOT/prepared}``. A workspace made with
    other ``count``/``image_size``/``seed`` is rebuilt rather than silently reused.
    """
    from celebseg_utils.prepare import prepare_dataset
    from celebseg_utils.synthetic import write_synthetic_dataset

    root = Path(root)
    data_root, prepared = root / "raw", root / "prepared"
    wanted = {"count": count, "image_size": image_size, "seed": seed}
    stamp = root / "smoke.json"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and layout.info_path(prepared).exists():
        return {"data_root": data_root, "prepared": prepared}
    write_synthetic_dataset(data_root, count, image_size=image_size, seed=seed, progress=progress)
    prepare_dataset(data_root, prepared, progress=progress)
    from celebseg_utils.fileio import atomic_write_json

    atomic_write_json(stamp, wanted)
    return {"data_root": data_root, "prepared": prepared}
