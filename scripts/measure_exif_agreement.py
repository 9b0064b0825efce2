"""How well a phone photo stored sideways parses: the EXIF figure of issue #25.

For real faces of a prepared folder's test split: the 512x512 photo is cut to a 400x512
portrait (upright, as a viewer shows it), saved losslessly as the reference, and saved
again as a phone would, its pixels stored turned (512x400) in a quality-95 JPEG with EXIF
Orientation=6. ``predict`` (``predict_images``, what the CLI runs) parses both; the figure
is the share of pixels where the phone photo's label map equals the upright photo's.
For comparison, "as stored" parses the stored pixels without the tag (what predict did
before it applied EXIF orientation) and turns that label map upright before comparing.

    python scripts/measure_exif_agreement.py --model runs/cpu-real/best.keras \\
        --prepared data/mini_prep --count 50 [--align 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--prepared", required=True, help="a prepared folder of real faces")
    parser.add_argument("--count", type=int, default=50, help="faces of the test split to use")
    parser.add_argument("--align", type=int, default=0, help="also this many with --align")
    args = parser.parse_args(argv)

    from celebseg_utils.data import layout
    from celebseg_utils.engine.predict import predict_images

    prepared = Path(args.prepared)
    ids = layout.read_split(prepared, "test")[: args.count]
    work = Path(tempfile.mkdtemp(prefix="exif_"))
    upright_files, phone_files, stored_files = [], [], []
    for k in ids:
        with Image.open(layout.photo_path(prepared, k)) as im:
            photo = np.asarray(im.convert("RGB"))
        upright = np.ascontiguousarray(photo[:, 56:456])  # 400 wide, 512 high: a portrait
        stored = np.ascontiguousarray(np.rot90(upright))  # as the sensor wrote it, 512x400
        Image.fromarray(upright).save(work / f"{k}_upright.png")
        im = Image.fromarray(stored)
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(work / f"{k}_phone.jpg", quality=95, exif=exif.tobytes())
        im.save(work / f"{k}_stored.jpg", quality=95)  # the same pixels, no tag
        upright_files.append(work / f"{k}_upright.png")
        phone_files.append(work / f"{k}_phone.jpg")
        stored_files.append(work / f"{k}_stored.jpg")

    def labels(files, out, **kw):
        predict_images(args.model, files, work / out, progress=False, **kw)
        return {f.stem.split("_")[0]: np.asarray(Image.open(work / out / f"{f.stem}.png"))
                for f in files}

    def agreement(files, out, **kw):
        ref, phone = labels(upright_files[:len(files)], out + "_ref", **kw), labels(files, out, **kw)
        shapes = {k: phone[k].shape for k in phone}
        same = sum(int((phone[k] == ref[k]).sum()) for k in ref if phone[k].shape == ref[k].shape)
        return same / sum(r.size for r in ref.values()), shapes

    result = {"model": args.model, "faces": len(ids)}
    share, shapes = agreement(phone_files, "phone")
    result["phone_vs_upright"] = round(share, 5)
    result["phone_label_shapes"] = sorted({str(s) for s in shapes.values()})
    ref = labels(upright_files, "phone_ref")
    stored = labels(stored_files, "stored")
    turned = {k: np.rot90(v, -1) for k, v in stored.items()}  # the stored parse, shown upright
    result["as_stored_vs_upright"] = round(
        sum(int((turned[k] == ref[k]).sum()) for k in ref) / sum(r.size for r in ref.values()), 5)
    if args.align:
        share, _ = agreement(phone_files[: args.align], "phone_align", align=True)
        result["align_faces"] = args.align
        result["align_phone_vs_upright"] = round(share, 5)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
