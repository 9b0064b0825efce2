"""Face detection for ``celebseg predict --align``: boxes and five landmarks per face (MTCNN).

The detector is the ``mtcnn`` package (MIT; its weights ship inside the wheel, so it works
offline), imported lazily: without it, :class:`FaceDetector` raises a one-line
``CelebsegError`` that says ``pip install celebseg[align]``. Landmarks are in photo pixels,
``(x, y)``, in the order of :data:`LANDMARKS`; "left" and "right" are the photo's left and
right (the person's right eye is the photo's left one).

Large photos are detected on a copy whose longer side is at most ``detect_size`` pixels,
because MTCNN's image pyramid costs about the photo's pixel count (1.0 s at 512 px, 2.9 s
at 1024, 16 s at 2048 on this project's loaded 2-core CPU); boxes and landmarks are scaled
back to the photo.

>>> from celebseg_utils.face.detect import FaceDetector  # doctest: +SKIP
>>> faces = FaceDetector()(read_image("two_people.jpg"))  # doctest: +SKIP
>>> [round(f.eye_distance) for f in faces]  # doctest: +SKIP
[126, 84]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celebseg_utils.errors import CelebsegError

#: The five landmarks, in the order of ``Face.landmarks`` rows (photo left/right).
LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
#: Longest side a photo is detected at (see the module docstring).
DEFAULT_DETECT_SIZE = 1024
INSTALL_HINT = "pip install celebseg[align]"


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` (x0, y0, x1, y1), ``landmarks`` (5, 2) float (x, y) in
    photo pixels, the detector's ``confidence``.

    >>> f = Face((0, 0, 10, 10), np.array([[2, 4], [8, 4], [5, 6], [3, 8], [7, 8]], float), 0.9)
    >>> f.eye_distance, f.centre.tolist()
    (6.0, [5.0, 6.0])
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    confidence: float

    @property
    def eye_distance(self) -> float:
        """Pixels between the two eye landmarks: the face's scale."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    @property
    def centre(self) -> np.ndarray:
        """Mean of the five landmarks: where the face is, for sharing pixels between faces."""
        return self.landmarks.mean(axis=0)


def faces_from_mtcnn(rows: np.ndarray, scale: float = 1.0) -> list[Face]:
    """Faces from MTCNN's numpy output rows ``[image, x0, y0, x1, y1, confidence, five x,
    five y]``, coordinates divided by ``scale`` (the factor the photo was resized by).

    >>> row = np.array([[0, 10, 20, 30, 40, .99, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], float)
    >>> faces_from_mtcnn(row, scale=0.5)[0].landmarks[:2].tolist()
    [[2.0, 12.0], [4.0, 14.0]]
    """
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
        # mtcnn 1.0's numpy rows hold the five x coordinates, then the five y (checked on a
        # real face against its JSON output, whose docstring says x, y pairs)
        landmarks = np.stack([row[6:11], row[11:16]], axis=1) / scale
        faces.append(Face(tuple(float(v) / scale for v in row[1:5]), landmarks, float(row[5])))
    return faces


class FaceDetector:
    """``detector(image)`` -> list of :class:`Face` for an RGB uint8 (H, W, 3) photo, largest
    face first.

    >>> FaceDetector()(np.zeros((64, 64, 3), np.uint8))  # doctest: +SKIP
    []
    """

    def __init__(self, detect_size: int = DEFAULT_DETECT_SIZE, min_confidence: float = 0.8):
        try:
            from mtcnn import MTCNN  # the optional [align] extra
        except ImportError:
            raise CelebsegError(f"--align needs the mtcnn face detector, which is not "
                                f"installed: {INSTALL_HINT}") from None

        if detect_size < 32:
            raise CelebsegError(f"detect_size={detect_size} is too small: use at least 32")
        self.detect_size = int(detect_size)
        self.min_confidence = float(min_confidence)
        self._mtcnn = MTCNN()

    def __call__(self, image: np.ndarray) -> list[Face]:
        from PIL import Image

        image = np.asarray(image)[..., :3]
        h, w = image.shape[:2]
        scale = min(1.0, self.detect_size / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        try:
            rows = self._mtcnn.detect_faces(image, output_type="numpy", box_format="xyxy")
        except Exception as exc:  # any failure inside the third-party detector
            raise CelebsegError(f"the face detector failed ({exc.__class__.__name__}: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
                                ) from None
        faces = [f for f in faces_from_mtcnn(rows, scale) if f.confidence >= self.min_confidence]
        return sorted(faces, key=lambda f: -f.eye_distance)
