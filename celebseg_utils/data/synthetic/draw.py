"""Drawing one synthetic face: its geometry, its per-attribute masks and its photo.

Internal to :mod:`celebseg_utils.data.synthetic.generator`. A face is designed in *canonical* units (a
fraction of the image side at scale 1, origin at the face centre, y down), then posed
(rotation, scale, offset). Every attribute is a list of polygons, each added to or cut from
its mask, so the masks at S px and the photo at 2S px are rasterised from the same
geometry. The photo is painted by pasting each attribute's texture through its own mask
in the official precedence order, so a photo pixel shows the attribute that wins there
in the fused label map.

>>> import numpy as np
>>> photo, masks = draw_face(np.random.default_rng(0), 64)
>>> photo.size, masks["skin"].size, masks["skin"].mode
((128, 128), (64, 64), 'L')
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from celebseg_utils.labels import ATTRIBUTES
from celebseg_utils.data.synthetic.paint import finish_photo, hsv, paint_attribute, paint_background

SKIN_TONES = np.array([(250, 218, 195), (236, 192, 160), (212, 160, 122), (182, 127, 90),
                       (142, 96, 66), (104, 68, 46), (72, 47, 33)], dtype=np.float64)
HAIR_COLORS = np.array([(22, 18, 16), (48, 32, 24), (92, 60, 38), (140, 100, 64),
                        (196, 160, 104), (128, 56, 30), (150, 148, 146), (205, 200, 192)],
                       dtype=np.float64)
HAIR_WEIGHTS = np.array([0.26, 0.24, 0.16, 0.1, 0.1, 0.06, 0.05, 0.03])


def _superellipse(cx, cy, rx, ry, n=40, p=2.0, rot=0.0):
    """(n, 2) points of a (super)ellipse; ``p`` > 2 gives a rounded rectangle."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = np.sign(c) * np.abs(c) ** (2.0 / p) * rx
    y = np.sign(s) * np.abs(s) ** (2.0 / p) * ry
    if rot:
        x, y = x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)
    return np.stack([cx + x, cy + y], axis=1)


def _stroke(pts, width):
    """A polygon around the polyline ``pts`` of the given width (for chains and frames)."""
    pts = np.asarray(pts, dtype=np.float64)
    tangent = np.gradient(pts, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * (width / 2.0)
    return np.concatenate([pts + normal, (pts - normal)[::-1]])


def _band(x, top, bottom):
    """The polygon between two curves sampled at the same x."""
    return np.concatenate([np.stack([x, top], 1), np.stack([x[::-1], bottom[::-1]], 1)])


class Face:
    """One random face: pose, geometry (``ops``: attribute -> [(polygon, 255 | 0)]) and looks.

    >>> face = Face(np.random.default_rng(1))
    >>> "skin" in face.ops, face.rasterize("skin", 32).size
    (True, (32, 32))
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        u = rng.uniform
        self.angle = math.radians(float(np.clip(rng.normal(0.0, 7.0), -20.0, 20.0)))
        self.scale = u(0.95, 1.22)
        self.center = (0.5 + u(-0.05, 0.05), 0.5 + u(-0.04, 0.04))
        self.fw = u(0.2, 0.24)
        self.fh = self.fw * u(1.38, 1.56)
        self.taper = u(0.18, 0.36)
        self.yaw = u(-0.02, 0.02)
        t = u(0.0, 1.0) * (len(SKIN_TONES) - 1)
        i = min(int(t), len(SKIN_TONES) - 2)
        self.skin = (SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[i + 1] * (t - i)) * rng.normal(1.0, 0.035, 3)
        hair = HAIR_COLORS[rng.choice(len(HAIR_COLORS), p=HAIR_WEIGHTS)]
        self.hair_color = hsv(u(), u(0.5, 0.8), u(0.35, 0.7)) if u() < 0.04 else hair * rng.normal(1, 0.06, 3)
        self.hair_style = rng.choice(["none", "short", "long"], p=[0.08, 0.4, 0.52])
        self.curly = u() < 0.25
        self.fringe = self.hair_style != "none" and u() < 0.3
        self.mouth_open = u() < 0.45
        self.glasses = u() < 0.08
        self.sunglasses = self.glasses and u() < 0.25
        self.hat = u() < 0.07
        self.earrings = u() < 0.22
        self.necklace = u() < 0.08
        self.cloth = u() < 0.9
        self.stubble = u() < 0.15
        self.iris = np.array([(90, 55, 30), (50, 32, 20), (70, 110, 150), (80, 105, 60)][
            rng.choice(4, p=[0.4, 0.35, 0.15, 0.1])], dtype=np.float64)
        self.gaze = u(-0.3, 0.3)
        lipstick = hsv(u(0.93, 1.02), u(0.45, 0.85), u(0.4, 0.85))
        self.lip = lipstick if u() < 0.3 else self.skin * 0.6 + np.array((165, 55, 70)) * 0.4
        self.ops: dict[str, list] = {}
        self._build()
        if self.necklace:  # keep the rare necklace in the frame: move the face up if needed
            lowest = max(self.to_px(p, 1)[:, 1].max() + 0.5 for p, _ in self.ops["neck_l"])
            self.center = (self.center[0], self.center[1] - max(0.0, lowest - 0.94))

    # -- geometry -------------------------------------------------------------------------
    def face_half_width(self, y):
        """Half-width of the face outline at height ``y`` (0 outside it)."""
        s = np.clip(np.asarray(y) / self.fh, -1.0, 1.0)
        return self.fw * np.sqrt(1.0 - s ** 2) * (1.0 - self.taper * np.clip(s, 0, None) ** 1.5)

    def _build(self):
        u, rng, fw, fh = self.rng.uniform, self.rng, self.fw, self.fh
        t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        s = np.sin(t)
        self.face = np.stack([fw * np.cos(t) * (1 - self.taper * np.clip(s, 0, None) ** 1.5), fh * s], 1)
        self.ops["skin"] = [(self.face, 255)]
        cx = self.yaw
        # Eyes, brows (the subject's left, ``l_*``, is on the image's right: +x).
        self.ey = ey = -fh * u(0.13, 0.22)
        self.eye_dx, self.ew = fw * u(0.42, 0.5), u(0.038, 0.048)
        self.eh = self.ew * u(0.36, 0.5)
        self.by = ey - u(0.05, 0.07)
        bt, arch = u(0.022, 0.032), u(0.004, 0.018)
        self.eyes, self.brows = {}, {}
        for side, sign in (("l", 1.0), ("r", -1.0)):
            ex = cx + sign * self.eye_dx
            x = np.linspace(-1, 1, 17)
            upper = ey - self.eh * (1 - x ** 2) ** 0.7
            lower = ey + self.eh * 0.8 * (1 - x ** 2) ** 0.9
            self.eyes[side] = (ex, _band(ex + x * self.ew, upper, lower))
            bx = np.linspace(0, 1, 15)
            xs = ex + sign * (-self.ew * 1.0 + bx * self.ew * 2.6)
            mid = self.by - arch * np.sin(np.pi * np.clip(bx * 0.85 + 0.1, 0, 1))
            th = bt * (1.0 - 0.45 * bx)
            self.brows[side] = _band(xs, mid - th / 2, mid + th / 2)
            if not self.sunglasses:
                self.ops[f"{side}_eye"] = [(self.eyes[side][1], 255)]
            self.ops[f"{side}_brow"] = [(self.brows[side], 255)]
        # Nose: a narrow bridge that widens into the nostril wings.
        self.ny = ny = ey + u(0.14, 0.18)
        self.nw = nw = u(0.04, 0.055)
        ys = np.array([ey - 0.005, ny - 0.04, ny - 0.015, ny, ny + 0.012])
        hw = np.array([0.02, 0.027, nw, nw * 0.85, nw * 0.35])
        self.nose = np.concatenate([np.stack([cx + hw, ys], 1), np.stack([cx - hw, ys], 1)[::-1]])
        self.ops["nose"] = [(self.nose, 255)]
        self._build_mouth(cx)
        self._build_ears()
        self._build_hair()
        self._build_body()
        if self.glasses:
            self._build_glasses(cx)
        if self.hat:
            self._build_hat()
        if self.earrings:
            self._build_earrings()

    def _build_mouth(self, cx):
        u = self.rng.uniform
        self.my = my = self.ny + u(0.075, 0.1)
        mw = u(0.058, 0.078)
        x = np.linspace(-1, 1, 25)
        env = np.sqrt(1 - x ** 2)
        y0 = my - u(-0.004, 0.008) * (1 - x ** 2)
        gap = u(0.02, 0.05) if self.mouth_open else 0.0
        ut, lt = u(0.018, 0.026), u(0.022, 0.032)
        cupid = 1.0 - 0.3 * np.exp(-(x / 0.18) ** 2) + 0.12 * np.exp(-((np.abs(x) - 0.3) / 0.2) ** 2)
        up_in, lo_in = y0 - gap / 2 * env ** 1.2, y0 + gap / 2 * env ** 1.2
        up_out, lo_out = up_in - ut * env ** 0.7 * cupid, lo_in + lt * env ** 0.8
        xs = cx + x * mw
        self.mouth_line = np.stack([xs, y0], 1)
        self.ops["u_lip"] = [(_band(xs, up_out, up_in), 255)]
        self.ops["l_lip"] = [(_band(xs, lo_in, lo_out), 255)]
        self.teeth = self.mouth_open and u() < 0.6
        if self.mouth_open:  # the whole mouth area: lips win where they overlap it
            self.ops["mouth"] = [(_band(xs, up_out, lo_out), 255)]
        self.mouth_box = (cx, y0.mean(), mw, gap)

    def _build_ears(self):
        u = self.rng.uniform
        self.ear_y = self.ey + u(0.03, 0.06)
        eah, eaw = u(0.055, 0.07), u(0.026, 0.034)
        self.ears = {}
        for side, sign in (("l", 1.0), ("r", -1.0)):
            x = sign * (float(self.face_half_width(self.ear_y)) + eaw * u(0.3, 0.6))
            shape = _superellipse(x, self.ear_y, eaw, eah, n=32, p=2.2, rot=sign * u(0.05, 0.2))
            self.ears[side] = (x, eah, eaw, shape)
            self.ops[f"{side}_ear"] = [(shape, 255), (self.face, 0)]

    def _build_hair(self):
        if self.hair_style == "none":
            return
        u, fw, fh = self.rng.uniform, self.fw, self.fh
        top = -fh - u(0.04, 0.12)
        y0 = self.ey - 0.02
        xs = fw * (u(1.2, 1.4) if self.hair_style == "long" else u(1.08, 1.28))
        t = np.linspace(math.pi, 2 * math.pi, 40)
        r = 1.0 + (0.03 * np.sin(t * 9 + u(0, 6)) + 0.02 * np.sin(t * 15 + u(0, 6)) if self.curly else 0)
        arc = np.stack([xs * np.cos(t) * r, y0 + (y0 - top) * np.sin(t) * r], 1)
        if self.hair_style == "long":
            bottom = fh + u(0.05, 0.5)
            xb = xs * u(1.0, 1.35)
            outer = np.concatenate([[(-xb, bottom)], arc, [(xb, bottom)]])
        else:
            sb = self.ey + u(0.0, 0.05)
            outer = np.concatenate([[(-xs * 0.97, sb)], arc, [(xs * 0.97, sb)]])
        # The face window: the skin the hair does not cover (hairline, temples, cheeks).
        self.hairline = hl = (self.by + u(-0.005, 0.03)) if self.fringe else -fh * u(0.55, 0.78)
        inset = u(0.86, 0.98)
        ys = np.linspace(hl + 0.03, fh * 1.3, 14)
        side = np.maximum(self.face_half_width(ys), fw * 0.25) * inset
        side[-3:] = fw * 0.6
        hx = np.linspace(-1, 1, 21)
        teeth = (0.012 * (np.arange(21) % 2)) if self.fringe else 0.0
        line = hl + (0.02 if self.fringe else u(0.01, 0.06)) * hx ** 2 + teeth
        window = np.concatenate([np.stack([side, ys], 1), np.stack([-side, ys], 1)[::-1],
                                 np.stack([hx * side[0], line], 1)])
        self.ops["hair"] = [(outer, 255), (window, 0)]
        for side_name in ("l", "r"):
            if self.hair_style == "long" and u() < 0.3:  # tucked behind that ear
                x, eah, eaw, _ = self.ears[side_name]
                self.ops["hair"].append((_superellipse(x, self.ear_y, eaw * 1.3, eah * 1.15), 0))
        self.hair_top, self.hair_x = top, xs

    def _build_body(self):
        u, fw, fh = self.rng.uniform, self.fw, self.fh
        nw = fw * u(0.48, 0.62)
        self.sy = sy = fh + u(0.05, 0.13)
        shoulder = u(0.55, 0.7)
        left = [(-nw, fh * 0.45), (-nw * 1.08, sy), (-shoulder, sy + u(0.06, 0.12)), (-shoulder - 0.1, 1.6)]
        right = [(-x, y) for x, y in left[::-1]]
        neck_poly = np.array(left + right)
        self.neck_poly = neck_poly
        cut = []
        if self.necklace:
            dip = u(0.05, 0.11)
            x = np.linspace(-1, 1, 25)
            y_start = sy - u(0.02, 0.05)
            chain = np.stack([x * nw * 0.98, y_start + dip * (1 - x ** 2)], 1)
            self.chain, self.chain_w = chain, u(0.018, 0.026)
            cut = [(_stroke(chain, self.chain_w), 255)]
            if u() < 0.6:
                pr = u(0.022, 0.032)
                cut.append((_superellipse(0, y_start + dip + pr * 1.1, pr * 0.8, pr * 1.1), 255))
            self.ops["neck_l"] = cut
            need = y_start + dip + 0.07 - sy
        else:
            need = 0.0
        self.ops["neck"] = [(neck_poly, 255), (self.face, 0)] + [(p, 0) for p, _ in cut]
        if not self.cloth:
            return
        self.neckline = self.rng.choice(["round", "v", "crew", "collar"], p=[0.4, 0.25, 0.2, 0.15])
        depth = max(need, {"round": u(0.03, 0.12), "v": u(0.08, 0.2), "crew": u(0.0, 0.025),
                           "collar": u(0.04, 0.1)}[self.neckline])
        x = np.linspace(-1, 1, 21)
        dip = depth * (1 - np.abs(x)) if self.neckline == "v" else depth * (1 - x ** 2)
        neck_x = nw * 1.1 + (0.02 if self.neckline == "crew" else 0.05 * (depth > 0.05))
        cloth = np.concatenate([[left[3], left[2]], np.stack([x * neck_x, sy + dip], 1), [right[1], right[0]]])
        self.ops["cloth"] = [(cloth, 255)] + [(p, 0) for p, _ in cut]
        if self.neckline == "collar":
            for sign in (-1, 1):
                tri = np.array([(sign * nw * 1.15, sy - 0.05), (sign * nw * 0.2, sy + depth),
                                (sign * (neck_x + 0.06), sy + 0.03)])
                self.ops["cloth"].insert(1, (tri, 255))

    def _build_glasses(self, cx):
        u = self.rng.uniform
        lw, lh = self.ew * u(1.45, 1.8), u(0.032, 0.048)
        p = float(self.rng.choice([2.0, 2.0, 3.5, 5.0]))
        self.frame_w = u(0.012, 0.02)
        ly = self.ey + u(0.0, 0.012)
        self.lenses = [_superellipse(cx + s * self.eye_dx, ly, lw, lh, n=40, p=p) for s in (1, -1)]
        inner = self.eye_dx - lw * 0.95
        bridge = np.array([(cx - inner, ly - lh * 0.4), (cx, ly - lh * 0.6), (cx + inner, ly - lh * 0.4)])
        self.frame_lines = [bridge]
        for s in (1, -1):
            x_out = cx + s * (self.eye_dx + lw * 0.97)
            x_ear = s * (float(self.face_half_width(ly)) + 0.015)
            self.frame_lines.append(np.array([(x_out, ly - lh * 0.4), (x_ear, ly - lh * 0.6)]))
        self.ops["eye_g"] = [(ln, 255) for ln in self.lenses] + [
            (_stroke(ln, self.frame_w * 1.2), 255) for ln in self.frame_lines]

    def _build_hat(self):
        u = self.rng.uniform
        hx = (getattr(self, "hair_x", self.fw * 1.1)) * u(1.02, 1.12)
        self.hat_bottom = hb = self.by - u(0.04, 0.09)
        top = min(getattr(self, "hair_top", -self.fh), -self.fh) - u(0.02, 0.08)
        t = np.linspace(math.pi, 2 * math.pi, 30)
        dome = np.stack([hx * np.cos(t), hb - (hb - top) * np.abs(np.sin(t)) ** 1.3], 1)[1:-1]
        crown = np.concatenate([[(-hx, hb)], dome, [(hx, hb)]])
        self.hat_kind = self.rng.choice(["beanie", "cap", "brim"], p=[0.4, 0.3, 0.3])
        self.ops["hat"] = [(crown, 255)]
        if self.hat_kind == "brim":
            self.ops["hat"].append((_superellipse(0, hb - 0.01, hx * u(1.3, 1.55), u(0.02, 0.03)), 255))
        elif self.hat_kind == "cap":
            self.ops["hat"].append((_superellipse(0, hb, hx * u(0.7, 0.9), u(0.025, 0.035)), 255))

    def _build_earrings(self):
        u = self.rng.uniform
        kind = self.rng.choice(["stud", "drop", "hoop"], p=[0.4, 0.4, 0.2])
        sides = ("l", "r") if u() < 0.8 else (("l",) if u() < 0.5 else ("r",))
        self.earring_kind, ops = kind, []
        r = u(0.018, 0.026)
        for side in sides:
            x, eah, eaw, _ = self.ears[side]
            lobe = self.ear_y + eah * 0.85
            if kind == "stud":
                ops.append((_superellipse(x, lobe + r * 0.6, r, r, n=16), 255))
            elif kind == "drop":
                ops.append((_superellipse(x, lobe + r * 2.0, r * 0.85, r * 1.7, n=20), 255))
            else:
                ro = r * 1.6
                ops += [(_superellipse(x, lobe + ro, ro, ro, n=24), 255),
                        (_superellipse(x, lobe + ro, ro - r * 0.75, ro - r * 0.75, n=24), 0)]
        self.ops["ear_r"] = ops

    # -- pose -----------------------------------------------------------------------------
    def to_px(self, pts, res: int) -> np.ndarray:
        """Canonical points -> pixel coordinates (PIL's convention) at resolution ``res``."""
        pts = np.asarray(pts, dtype=np.float64)
        c, s = math.cos(self.angle) * self.scale, math.sin(self.angle) * self.scale
        x = self.center[0] + c * pts[..., 0] - s * pts[..., 1]
        y = self.center[1] + s * pts[..., 0] + c * pts[..., 1]
        return np.stack([x, y], -1) * res - 0.5

    def to_canonical(self, px, py, res: int):
        """Pixel coordinates at resolution ``res`` -> canonical (x, y) arrays."""
        dx = (np.asarray(px) + 0.5) / res - self.center[0]
        dy = (np.asarray(py) + 0.5) / res - self.center[1]
        c, s = math.cos(self.angle) / self.scale, math.sin(self.angle) / self.scale
        return c * dx + s * dy, -s * dx + c * dy

    def rasterize(self, attribute: str, res: int) -> Image.Image:
        """The binary (0/255, mode L) mask of one attribute at ``res`` x ``res``."""
        img = Image.new("L", (res, res), 0)
        draw = ImageDraw.Draw(img)
        for poly, fill in self.ops.get(attribute, ()):
            draw.polygon([tuple(p) for p in self.to_px(poly, res)], fill=fill)
        return img


def draw_face(rng: np.random.Generator, size: int):
    """Design and draw one face: ``(photo RGB Image at 2*size, {attribute: L mask at size})``.

    Attributes absent from the face (or pushed out of the frame) have no entry.

    >>> photo, masks = draw_face(np.random.default_rng(2), 32)
    >>> photo.mode, sorted(set(np.unique(np.asarray(masks["skin"])).tolist()))
    ('RGB', [0, 255])
    """
    face = Face(rng)
    masks = {a: face.rasterize(a, size) for a in ATTRIBUTES if a in face.ops}
    masks = {a: m for a, m in masks.items() if m.getbbox() is not None}
    res = 2 * size
    canvas = paint_background(rng, res)
    for attribute in ATTRIBUTES:
        if attribute not in masks:
            continue
        mask = face.rasterize(attribute, res)
        box = mask.getbbox()
        if box is None:
            continue
        layer = paint_attribute(face, attribute, canvas, box, res)
        canvas.paste(layer, box[:2], mask.crop(box))
    return finish_photo(rng, canvas), masks


def encode_jpeg(photo: Image.Image, rng: np.random.Generator) -> bytes:
    """JPEG bytes at a random quality (the artefacts are part of the difficulty).

    >>> encode_jpeg(Image.new("RGB", (8, 8)), np.random.default_rng(0))[:2]
    b'\\xff\\xd8'
    """
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=int(rng.integers(40, 96)))
    return buf.getvalue()

