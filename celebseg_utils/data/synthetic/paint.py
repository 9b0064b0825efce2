"""Painting a synthetic face: the texture of each attribute, the background, the camera.

Internal to :mod:`celebseg_utils.data.synthetic.generator`. Each attribute keeps one consistent look (lips
a lip colour, the inner mouth dark, brows dark strokes, earrings small shiny metal, cloth a
fabric pattern, neck a shadowed skin tone) so that the classes can be told apart from the
photo; the nuisances (pose, tones, clutter, lighting, noise, JPEG) make it a real test.

>>> import numpy as np
>>> paint_background(np.random.default_rng(0), 64).size
(64, 64)
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

METALS = np.array([(214, 178, 60), (205, 205, 214), (190, 120, 120), (238, 232, 220)], dtype=np.float64)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour (0..255 floats) from hue, saturation and value in 0..1.

    >>> hsv(0.0, 1.0, 1.0).tolist()
    [255.0, 0.0, 0.0]
    """
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


def _rgb(color) -> tuple:
    return tuple(int(v) for v in np.clip(np.asarray(color) + 0.5, 0, 255))


def _luma(color) -> float:
    return float(np.dot(color, (0.299, 0.587, 0.114)))


class _Layer:
    """A box of the photo in which one attribute is painted (canonical <-> pixel helpers)."""

    def __init__(self, face, box, res):
        self.face, self.res, self.rng = face, res, face.rng
        self.x0, self.y0 = box[0], box[1]
        self.w, self.h = box[2] - box[0], box[3] - box[1]
        step = res / 48.0  # coarse fields: blotches about 1/48 of the image, at any size
        self.nx, self.ny = max(2, math.ceil(self.w / step) + 1), max(2, math.ceil(self.h / step) + 1)
        gx = np.linspace(self.x0, self.x0 + self.w - 1, self.nx)
        gy = np.linspace(self.y0, self.y0 + self.h - 1, self.ny)
        self.X, self.Y = face.to_canonical(*np.meshgrid(gx, gy), res)

    def px(self, pts):
        return [tuple(p) for p in self.face.to_px(pts, self.res) - (self.x0, self.y0)]

    def width(self, w: float) -> int:
        return max(1, int(round(w * self.res * self.face.scale)))

    def up(self, coarse: np.ndarray) -> np.ndarray:
        img = Image.fromarray(coarse.astype(np.float32))
        return np.asarray(img.resize((self.w, self.h), Image.BILINEAR))

    def shaded(self, color, shade=None, tint=None, noise=0.05):
        """``color`` x (1 + low-frequency noise) x ``shade`` (+ ``tint``), as an RGB image."""
        m = 1.0 + noise * self.rng.standard_normal(self.X.shape)
        if shade is not None:
            m = m * shade
        rgb = np.asarray(color, dtype=np.float32)[None, None, :] * self.up(m)[..., None]
        if tint is not None:  # a reddish flush (blush), added to the colour
            rgb = rgb + self.up(tint)[..., None] * np.asarray((1.0, -0.25, -0.2), np.float32)
        return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


def _gauss(X, Y, cx, cy, r):
    return np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (r * r))


def _skin(face, L, canvas):
    X, Y = L.X, L.Y
    r = np.sqrt((X / face.fw) ** 2 + (Y / face.fh) ** 2)
    shade = 1.0 - 0.3 * np.clip(r - 0.6, 0, 1) ** 1.3 + 0.05 * _gauss(X, Y, 0, -face.fh * 0.55, 0.08)
    for s in (1, -1):
        shade = shade - 0.1 * _gauss(X, Y, face.yaw + s * face.eye_dx, face.ey, 0.045)
    blush = face.rng.uniform(0, 28) * sum(_gauss(X, Y, s * face.eye_dx * 1.1, face.ny, 0.05) for s in (1, -1))
    img = L.shaded(face.skin, shade, blush)
    if face.stubble:
        a = np.asarray(img).astype(np.float32)
        jaw = L.up((Y > face.my - 0.03).astype(np.float32) * (r < 1.05)) > 0.5
        dots = (face.rng.random((L.h, L.w)) < 0.35) & jaw
        a[dots] *= 0.55
        img = Image.fromarray(a.astype(np.uint8))
    return img


def _nose(face, L, canvas):
    cx = face.yaw
    off = np.abs(L.X - cx)
    bridge = np.exp(-(off / 0.006) ** 2) * (L.Y < face.ny - 0.02)  # the lit ridge
    shade = 1.0 - 0.22 * np.clip((off - 0.008) / 0.03, 0, 1) + 0.08 * bridge
    img = L.shaded(face.skin * (0.97, 0.92, 0.9), shade)
    d = ImageDraw.Draw(img)
    dark = _rgb(face.skin * 0.35)
    for s in (1, -1):
        d.polygon(L.px(_ellipse(cx + s * face.nw * 0.45, face.ny + 0.003, face.nw * 0.3, 0.008)), fill=dark)
        wing = [(cx + s * face.nw * 0.95, face.ny - 0.022), (cx + s * face.nw * 1.0, face.ny - 0.005),
                (cx + s * face.nw * 0.7, face.ny + 0.008)]
        d.line(L.px(np.array(wing)), fill=_rgb(face.skin * 0.62), width=L.width(0.004))
    return img


def _ellipse(cx, cy, rx, ry, n=24):
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _eye_g(face, L, canvas):
    crop = np.asarray(canvas.crop((L.x0, L.y0, L.x0 + L.w, L.y0 + L.h))).astype(np.float32)
    if face.sunglasses:
        crop = crop * 0.12 + np.asarray(face.rng.uniform(15, 45, 3), np.float32)
    else:
        crop = crop * np.asarray(face.rng.uniform(0.6, 0.85, 3), np.float32) + face.rng.uniform(15, 45)
    img = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    frame = _rgb(face.rng.choice([np.array((20, 20, 22)), np.array((70, 40, 25)), METALS[1] * 0.8,
                                  face.rng.uniform(20, 200, 3)]))
    glint = _rgb((235, 240, 245) if not face.sunglasses else (120, 120, 130))
    for lens in face.lenses:
        c = lens.mean(0)
        d.line(L.px(np.array([c + (-0.03, 0.015), c + (0.0, -0.02)])), fill=glint, width=L.width(0.005))
        d.polygon(L.px(lens), outline=frame, width=L.width(face.frame_w))
    for ln in face.frame_lines:
        d.line(L.px(ln), fill=frame, width=L.width(face.frame_w * 1.2), joint="curve")
    return img


def _eye(face, L, canvas, side):
    ex = face.eyes[side][0]
    sclera = np.array((236, 232, 226)) * face.rng.uniform(0.82, 1.0)
    img = L.shaded(sclera, 1.0 - 0.25 * np.clip(np.abs(L.X - ex) / face.ew - 0.5, 0, 1), noise=0.02)
    d = ImageDraw.Draw(img)
    ix, r = ex + face.gaze * face.ew, face.eh * 1.15
    d.polygon(L.px(_ellipse(ix, face.ey, r, r)), fill=_rgb(face.iris))
    d.polygon(L.px(_ellipse(ix, face.ey, r * 0.45, r * 0.45)), fill=(12, 10, 10))
    d.polygon(L.px(_ellipse(ix + r * 0.3, face.ey - r * 0.3, r * 0.18, r * 0.18, 10)), fill=(250, 250, 250))
    poly = face.eyes[side][1]
    d.line(L.px(poly[:17]), fill=(28, 20, 18), width=L.width(face.eh * 0.45), joint="curve")
    return img


def _brow_color(face):
    base = face.skin * 0.38 if face.hair_style == "none" else face.hair_color * 0.85
    limit = _luma(face.skin) * 0.55
    return base * min(1.0, limit / max(_luma(base), 1.0))


def _brow(face, L, canvas):
    color = _brow_color(face)
    img = L.shaded(color, noise=0.08)
    d = ImageDraw.Draw(img)
    n = max(8, (L.w * L.h) // 12)
    pts = np.stack([face.rng.uniform(0, L.w, n), face.rng.uniform(0, L.h, n)], 1)
    length = max(2.0, face.ew * 0.35 * L.res * face.scale)
    for (x, y), f in zip(pts, face.rng.uniform(0.6, 1.4, n)):
        d.line([(x, y), (x + length, y - length * 0.35)], fill=_rgb(color * f), width=1)
    return img


def _ear(face, L, canvas, side):
    x, eah, eaw, _ = face.ears[side]
    sign = 1.0 if side == "l" else -1.0
    img = L.shaded(face.skin * 0.95, 1.0 - 0.15 * np.clip(np.abs(L.X - x) / eaw - 0.4, 0, 1))
    d = ImageDraw.Draw(img)
    d.polygon(L.px(_ellipse(x - sign * eaw * 0.1, face.ear_y + eah * 0.05, eaw * 0.4, eah * 0.4)),
              fill=_rgb(face.skin * 0.66))
    t = np.linspace(-1.2, 1.2, 12)
    arc = np.stack([x + sign * eaw * 0.65 * np.cos(t), face.ear_y - eah * 0.1 + eah * 0.7 * np.sin(t)], 1)
    d.line(L.px(arc), fill=_rgb(face.skin * 0.75), width=L.width(0.005), joint="curve")
    return img


def _mouth(face, L, canvas):
    img = L.shaded(np.array((72, 24, 30)) * face.rng.uniform(0.55, 1.1), noise=0.1)
    if face.teeth:
        cx, cy, mw, gap = face.mouth_box
        teeth = np.array([(cx - mw * 0.6, cy - gap), (cx + mw * 0.6, cy - gap),
                          (cx + mw * 0.5, cy - gap * 0.1), (cx - mw * 0.5, cy - gap * 0.1)])
        ImageDraw.Draw(img).polygon(L.px(teeth), fill=_rgb(np.array((228, 222, 205)) * face.rng.uniform(0.8, 1)))
    return img


def _lip(face, L, canvas, upper):
    color = face.lip * (0.8 if upper else 1.0)
    shade = 1.0 + (0.0 if upper else 0.12 * _gauss(L.X, L.Y, face.yaw, face.my + 0.02, 0.025))
    img = L.shaded(color, shade, noise=0.06)
    ImageDraw.Draw(img).line(L.px(face.mouth_line), fill=_rgb(color * 0.45), width=L.width(0.004))
    return img


def _hair(face, L, canvas):
    color = face.hair_color
    r = np.sqrt((L.X / (face.fw * 1.3)) ** 2 + ((L.Y - face.ey) / (face.fh * 1.2)) ** 2)
    img = L.shaded(color, 1.0 - 0.2 * np.clip(r - 0.8, 0, 1), noise=0.12)
    d = ImageDraw.Draw(img)
    rng = face.rng
    n = int(min(900, 3000 * L.w * L.h / L.res ** 2)) + 10
    xs, ys = rng.uniform(0, L.w, n), rng.uniform(0, L.h, n)
    length = rng.uniform(0.03, 0.1, n) * L.res * face.scale
    cx, _ = face.to_px(np.array([0.0, 0.0]), L.res) - (L.x0, L.y0)
    lift = 14 if color.max() < 60 else 0  # black hair still shows its sheen
    width = max(1, L.res // 512)
    for x, y, ln, f in zip(xs, ys, length, rng.uniform(0.55, 1.5, n)):
        c = _rgb(color * f + (lift if f > 1.2 else 0))
        if face.curly:
            d.arc([x, y, x + ln * 0.4, y + ln * 0.4], rng.uniform(0, 360), rng.uniform(180, 540), fill=c, width=width)
        else:  # strands fall down and away from the parting
            a = math.atan2(1.0, 0.35 * np.sign(x - cx) + rng.normal(0, 0.2)) + face.angle
            d.line([(x, y), (x + ln * math.cos(a), y + ln * math.sin(a))], fill=c, width=width)
    return img


def _hat(face, L, canvas):
    rng = face.rng
    color = hsv(rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.85))
    img = L.shaded(color, noise=0.06)
    d = ImageDraw.Draw(img)
    hb = face.hat_bottom
    if face.hat_kind == "beanie":
        for x in np.linspace(-0.35, 0.35, 29):
            d.line(L.px(np.array([(x, hb), (x, hb - 0.4)])), fill=_rgb(color * 0.8), width=L.width(0.003))
    band = np.array([(-0.5, hb - 0.05), (0.5, hb - 0.05), (0.5, hb - 0.015), (-0.5, hb - 0.015)])
    d.polygon(L.px(band), fill=_rgb(hsv(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.95))))
    return img


def _metal(face, L, color, polys):
    img = L.shaded(color, noise=0.04)
    d = ImageDraw.Draw(img)
    for poly in polys:
        c = poly.mean(0)
        d.polygon(L.px(poly), outline=_rgb(color * 0.5), width=1)
        rad = (poly.max(0) - poly.min(0)).min() * 0.22
        d.polygon(L.px(_ellipse(c[0] - rad, c[1] - rad, rad, rad, 8)), fill=_rgb(np.minimum(color * 1.25 + 40, 255)))
    return img


def _earring(face, L, canvas):
    color = METALS[face.rng.integers(len(METALS))] if face.rng.uniform() < 0.8 else hsv(face.rng.uniform(), 0.8, 0.8)
    return _metal(face, L, color, [p for p, fill in face.ops["ear_r"] if fill])


def _necklace(face, L, canvas):
    color = METALS[face.rng.integers(len(METALS))]
    img = _metal(face, L, color, [p for p, _ in face.ops["neck_l"][1:]])
    d = ImageDraw.Draw(img)
    beads = face.chain[::2]
    r = face.chain_w * 0.35
    for i, (x, y) in enumerate(beads):
        d.polygon(L.px(_ellipse(x, y, r, r, 8)), fill=_rgb(color * (1.2 if i % 2 else 0.7)))
    return img


def _neck(face, L, canvas):
    jaw = np.clip((L.Y - face.fh * 0.6) / 0.12, 0, 1)
    side = np.clip(np.abs(L.X) / (face.fw * 0.6) - 0.6, 0, 1)
    return L.shaded(face.skin * face.rng.uniform(0.8, 0.9), (0.72 + 0.28 * jaw) * (1 - 0.15 * side))


def _cloth(face, L, canvas):
    rng = face.rng
    color = hsv(rng.uniform(), rng.uniform(0.05, 0.85), rng.uniform(0.12, 0.92))
    img = L.shaded(color, noise=0.07)
    d = ImageDraw.Draw(img)
    pattern = rng.choice(["plain", "stripes", "checks", "dots"], p=[0.45, 0.25, 0.15, 0.15])
    other = _rgb(hsv(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.95)))
    step = max(3, int(L.res * rng.uniform(0.015, 0.05)))
    if pattern in ("stripes", "checks"):
        for off in range(0, L.w + L.h, step):
            d.line([(off, 0), (off - L.h * 0.3, L.h)], fill=other, width=max(1, step // 3))
            if pattern == "checks":
                d.line([(0, off), (L.w, off)], fill=other, width=max(1, step // 4))
    elif pattern == "dots":
        for y in range(0, L.h, step):
            for x in range((y // step % 2) * step // 2, L.w, step):
                d.ellipse([x, y, x + step // 3 + 1, y + step // 3 + 1], fill=other)
    for _ in range(rng.integers(2, 6)):
        x0 = rng.uniform(0, L.w)
        d.line([(x0, 0), (x0 + rng.uniform(-0.2, 0.2) * L.w, L.h)], fill=_rgb(color * 0.7), width=max(1, L.res // 256))
    return img


_PAINTERS = {
    "skin": _skin, "nose": _nose, "eye_g": _eye_g,
    "l_eye": lambda f, L, c: _eye(f, L, c, "l"), "r_eye": lambda f, L, c: _eye(f, L, c, "r"),
    "l_brow": _brow, "r_brow": _brow,
    "l_ear": lambda f, L, c: _ear(f, L, c, "l"), "r_ear": lambda f, L, c: _ear(f, L, c, "r"),
    "mouth": _mouth, "u_lip": lambda f, L, c: _lip(f, L, c, True), "l_lip": lambda f, L, c: _lip(f, L, c, False),
    "hair": _hair, "hat": _hat, "ear_r": _earring, "neck_l": _necklace, "neck": _neck, "cloth": _cloth,
}


def paint_attribute(face, attribute: str, canvas: Image.Image, box, res: int) -> Image.Image:
    """The texture of ``attribute`` over ``box`` (x0, y0, x1, y1) of the photo at ``res`` px.

    >>> from celebseg_utils.data.synthetic.draw import Face
    >>> face = Face(np.random.default_rng(0))
    >>> canvas = paint_background(face.rng, 64)
    >>> paint_attribute(face, "skin", canvas, (10, 10, 40, 50), 64).size
    (30, 40)
    """
    return _PAINTERS[attribute](face, _Layer(face, box, res), canvas)


def _random_color(rng):
    kind = rng.uniform()
    if kind < 0.15:  # skin-like: the background must not be a giveaway
        return np.array((215, 165, 130)) * rng.uniform(0.45, 1.1)
    if kind < 0.3:  # hair-like
        return np.array((70, 48, 32)) * rng.uniform(0.4, 1.8)
    return hsv(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.98))


def paint_background(rng: np.random.Generator, res: int) -> Image.Image:
    """A gradient, a studio backdrop or a cluttered scene, at ``res`` x ``res`` (see the module example)."""
    corners = np.stack([_random_color(rng) for _ in range(4)]).reshape(2, 2, 3)
    if rng.uniform() < 0.25:
        corners = corners.mean(axis=(0, 1), keepdims=True) * rng.uniform(0.9, 1.1, (2, 2, 1))
    img = Image.fromarray(np.clip(corners, 0, 255).astype(np.uint8)).resize((res, res), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.choice([0, 3, 8, 16], p=[0.25, 0.25, 0.3, 0.2]))):
        c = _rgb(_random_color(rng))
        x, y = rng.uniform(-0.1, 1.1, 2) * res
        w, h = rng.uniform(0.03, 0.4, 2) * res
        kind = rng.integers(4)
        if kind == 0:
            d.rectangle([x, y, x + w, y + h], fill=c)
        elif kind == 1:
            d.ellipse([x, y, x + w, y + h], fill=c)
        elif kind == 2:
            d.polygon([tuple(p) for p in rng.uniform(-0.1, 1.1, (int(rng.integers(3, 7)), 2)) * res], fill=c)
        else:
            d.line([(x, y), (x + w, y + h)], fill=c, width=max(1, int(rng.uniform(0.003, 0.03) * res)))
    if rng.uniform() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 4.0) * res / 256))
    if rng.uniform() < 0.4:  # a textured wall or foliage
        n = int(rng.integers(8, 64))
        tex = rng.normal(1.0, rng.uniform(0.05, 0.2), (n, n)).astype(np.float32)
        tex = np.asarray(Image.fromarray(tex).resize((res, res), Image.BILINEAR))
        img = Image.fromarray(np.clip(np.asarray(img) * tex[..., None], 0, 255).astype(np.uint8))
    return img


def finish_photo(rng: np.random.Generator, canvas: Image.Image) -> Image.Image:
    """The camera: slight blur, a lighting gradient, exposure, colour cast and sensor noise.

    >>> finish_photo(np.random.default_rng(0), Image.new("RGB", (16, 16), (128, 128, 128))).size
    (16, 16)
    """
    res = canvas.size[0]
    img = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * max(1.0, res / 512)))
    a = np.asarray(img, dtype=np.float32)
    theta, amp = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.3)
    g = np.linspace(-1.0, 1.0, res, dtype=np.float32)
    light = 1.0 + amp * (math.cos(theta) * g[None, :] + math.sin(theta) * g[:, None])
    gain = (rng.uniform(0.85, 1.12) * rng.normal(1.0, 0.04, 3)).astype(np.float32)
    a = a * light[..., None] * gain
    a += rng.standard_normal((res, res), dtype=np.float32)[..., None] * np.float32(rng.uniform(1.0, 5.0))
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))
