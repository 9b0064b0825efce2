"""Time restoring the prepared dataset from its kept form (one tar) against loose files.

Usage::

    .venv/bin/python scripts/bench_restore.py --images /work/shared/data/celebamask_hq_mini/images \\
        --labels /work/shared/data/celebamask_hq_mini/labels --work /tmp/journey-bench \\
        --out docs/bench/restore_prepared.json

What a fresh Colab runtime does at the top of notebooks 03-07: bring the prepared dataset
(labels, splits, photos) from Google Drive to its own disk. Drive stands here as a folder on
this machine's disk; both forms hold the same files:

* **kept form**: ``prepared.tar``, written by ``workspace.keep_prepared`` and restored by
  ``workspace.restore_prepared`` (one file read, unpacked through a staging folder);
* **loose files**: the same files as a folder tree, restored by ``shutil.copytree``.

One run of each, in that order, each from a cold page cache where the kernel lets us drop
it (``/proc/sys/vm/drop_caches``; the JSON says whether it did). Both restored folders are
checked to hold identical bytes. From the measured seconds it derives, and labels as
derived, the time for the full 30,000 faces by scaling with the face count: per-face bytes
and per-file costs as measured here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celebseg_utils.data import layout  # noqa: E402
from celebseg_utils.interface import workspace  # noqa: E402

FULL_FACES = 30_000


def drop_caches() -> bool:
    """Flush written pages and drop the page cache; False where the kernel refuses."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def tree_digest(folder: Path) -> tuple[int, int, str]:
    """(files, bytes, sha256 over names and contents) of a folder, prepare.json left out
    (its data_root names the folder)."""
    h, files, size = hashlib.sha256(), 0, 0
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "prepare.json":
            data = p.read_bytes()
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + data)
            files, size = files + 1, size + len(data)
    return files, size, h.hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (rebuilt)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)

    prepared = args.work / "prepared"
    if not workspace.is_ready(prepared):
        subprocess.run([sys.executable, "-m", "celebseg_utils", "prepare", "--images", str(args.images),
                        "--labels", str(args.labels), "--out", str(prepared)], check=True)
    drive = args.work / "drive"
    for d in (drive, args.work / "runtime-tar", args.work / "runtime-loose"):
        shutil.rmtree(d, ignore_errors=True)
    faces = layout.read_prepare_info(prepared)["num_images"]

    # Keep both forms on "Drive".
    start = time.perf_counter()
    kept = workspace.keep_prepared(prepared, drive / "celebseg", progress=False)
    keep_tar = time.perf_counter() - start
    files = workspace.prepared_files(prepared)  # the very files the tar holds
    loose = drive / "loose" / "prepared"
    start = time.perf_counter()
    for path, name in files:
        (loose / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, loose / name)  # follows links, as the tar does
    keep_loose = time.perf_counter() - start
    nbytes = sum(p.stat().st_size for p, _ in files)

    # Restore each on a fresh "runtime".
    cold = drop_caches()
    target_tar = args.work / "runtime-tar" / "data" / "prepared"
    target_tar.parent.mkdir(parents=True)
    start = time.perf_counter()
    workspace.restore_prepared(kept, target_tar, progress=False)
    tar_seconds = time.perf_counter() - start

    cold = drop_caches() and cold
    target_loose = args.work / "runtime-loose" / "data" / "prepared"
    target_loose.parent.mkdir(parents=True)
    start = time.perf_counter()
    shutil.copytree(loose, target_loose)
    loose_seconds = time.perf_counter() - start

    same = tree_digest(target_tar) == tree_digest(target_loose)
    if not same or not workspace.is_ready(target_tar):
        print("error: the two restored folders differ", file=sys.stderr)
        return 1
    mb = nbytes / 1e6
    scale = FULL_FACES / faces
    result = {
        "what": "restore the prepared dataset (labels, splits, photos) from a folder standing "
                "for Google Drive to the runtime's disk: one tar vs the same files loose",
        "command": " ".join(["python", "scripts/bench_restore.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "page_cache_dropped": cold},
        "faces": faces, "files": len(files), "megabytes": round(mb, 1),
        "tar_megabytes": round(kept.stat().st_size / 1e6, 1),
        "keep_seconds": {"tar": round(keep_tar, 2), "loose": round(keep_loose, 2)},
        "restore": {
            "tar": {"seconds": round(tar_seconds, 2), "mb_per_s": round(mb / tar_seconds, 1)},
            "loose": {"seconds": round(loose_seconds, 2), "mb_per_s": round(mb / loose_seconds, 1)},
        },
        "ratio_loose_over_tar": round(loose_seconds / tar_seconds, 2),
        "derived": {
            "note": "DERIVED, not measured: x (30000 / faces), same per-face bytes and per-file "
                    "costs as here, this disk standing for Drive",
            "full_faces": FULL_FACES,
            "tar_seconds": round(tar_seconds * scale, 1),
            "loose_seconds": round(loose_seconds * scale, 1),
        },
    }
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
