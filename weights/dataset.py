"""Builds stylestream's training set from sources these machines reach (Debian packages, scikit-image's
wheel, ../shared/fixtures/images) plus procedural styles, and writes a manifest (sha256, size, origin,
licence) of every file. Run through weights/dataset.sh, which fetches the sources and pins the tools.

Layout written under OUT:
    {train,eval}/{content,style}/<source>-<name>.png    RGB PNG, shorter side at most 512 px
    manifest.tsv                                       one row per image (header row first)
The held-out split (eval) is fixed by name: a file is held out when the first 8 hex digits of
sha256(name) are divisible by 6, so adding a source never moves an existing image between splits.
"""
import fnmatch
import hashlib
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

MAX_SHORT_SIDE = 512

# (package, path under the package root, role). Photos are content; artwork, textures and brush strokes
# are styles. Chosen by looking at every candidate: plasma's photographic wallpapers are content, its
# illustrations styles.
PLASMA = "usr/share/wallpapers/{}/contents/images"
DEBIAN = [
    *[("mate-backgrounds", f"usr/share/backgrounds/mate/nature/{n}.jpg", "content")
      for n in ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
                "Storm", "TwoWings", "Wood", "YellowFlower"]],
    *[("mate-backgrounds", f"usr/share/backgrounds/mate/abstract/{n}", "style")
      for n in ["Elephants.jpg", "Flow.png", "Gulp.png", "Silk.png", "Spring.png", "Waves.png"]],
    *[("plasma-workspace-wallpapers", PLASMA.format(n), "content")
      for n in ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                "Kite", "OneStandsOut", "Path", "summer_1am"]],
    *[("plasma-workspace-wallpapers", PLASMA.format(n), "style")
      for n in ["Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
                "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak",
                "SafeLanding", "Shell", "Volna"]],
    *[("krita-data", f"usr/share/krita/patterns/{n}.png", "style")
      for n in ["01_canvas", "09_drawed_crosshatched", "11_drawed_furry", "13_drawed_swirl", "14_texture-rock",
                "16_texture-woody", "17_texture-melt", "18_texture-bark", "19_texture-crackle",
                "20_texture-vegetal", "22_texture-reptile", "26_brush-marks", "Abstract_lines",
                "Rough_Wall_With_Impasto"]],
]
# scikit-image's bundled sample data (its README gives each image's licence).
SKIMAGE = [
    ("camera.png", "content", "CC0-1.0 (scikit-image data README)"),
    ("coins.png", "content", "public domain (Galata Museum, scikit-image data README)"),
    ("motorcycle_left.png", "content", "Middlebury stereo data, free for research (scikit-image data README)"),
    ("ihc.png", "style", "CC0-1.0 (scikit-image data README)"),
]
# ../shared/fixtures/images (scikit-image data too; licences from shared/fixtures/README.md).
FIXTURES = [
    ("astronaut.png", "content", "public domain (NASA)"),
    ("chelsea.png", "content", "CC0-1.0"),
    ("coffee.png", "content", "CC0-1.0"),
    ("rocket.jpg", "content", "public domain (NASA)"),
    ("brick.png", "style", "CC0-1.0"),
    ("grass.png", "style", "CC0-1.0"),
    ("gravel.png", "style", "CC0-1.0"),
    ("hubble_deep_field.jpg", "style", "public domain (NASA)"),
]


def held_out(name):
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 6 == 0


def dep5_licence(copyright_path, rel):
    """The License of the last DEP-5 stanza whose Files patterns match `rel` (a path inside the package) or
    its tail; DEP-5 says later stanzas override earlier ones. Falls back to the `Files: *` stanza."""
    stanzas, files, lic = [], None, None
    for line in open(copyright_path, encoding="utf-8", errors="replace").read().splitlines() + [""]:
        if line.startswith("Files:"):
            files = line[6:].split()
        elif line.startswith("License:") and files is not None:
            lic = line[8:].strip()
        elif not line.strip():
            if files is not None and lic:
                stanzas.append((files, lic))
            files, lic = None, None
        elif files is not None and lic is None and line.startswith(" "):
            files += line.split()
    best = None
    tails = [rel[i + 1:] for i in range(len(rel)) if rel[i] == "/"] + [rel]
    for pats, lic in stanzas:
        hit = [p for p in pats if any(fnmatch.fnmatch(t, p) for t in tails)]
        if hit:
            best = (hit[0], lic)
    if best is None:
        raise SystemExit(f"{copyright_path}: no DEP-5 stanza covers {rel}")
    return f"{best[1]} (debian/copyright, Files: {best[0]})"


def largest_image(directory):
    """A wallpaper folder holds one image per resolution: take the one with most pixels under 4K, else the
    smallest (decoding 5120x2880 PNGs buys nothing at 512 px)."""
    files = [f for f in os.listdir(directory) if f.lower().endswith((".png", ".jpg", ".jpeg"))]

    def pixels(f):
        w, h = f.rsplit(".", 1)[0].split("x")
        return int(w) * int(h)
    fitting = [f for f in files if pixels(f) <= 3840 * 2160]
    return os.path.join(directory, max(fitting, key=pixels) if fitting else min(files, key=pixels))


def save(img, out, role, name, origin, licence, rows):
    img = img.convert("RGB")
    short = min(img.size)
    if short > MAX_SHORT_SIDE:
        s = MAX_SHORT_SIDE / short
        img = img.resize((max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))), Image.LANCZOS)
    split = "eval" if held_out(name) else "train"
    rel = f"{split}/{role}/{name}.png"
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, optimize=False, compress_level=6)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    rows.append((split, role, rel, digest, img.size[0], img.size[1], origin, licence))


# ---- procedural styles: strokes, stripes, Voronoi, noise, palettes; deterministic by seed ----

def palette(rng, k):
    """k colours spread in hue with random saturation/value (uint8 RGB, [k, 3])."""
    h = (rng.random() + np.arange(k) / k + rng.normal(0, 0.04, k)) % 1.0
    s = rng.uniform(0.45, 1.0, k)
    v = rng.uniform(0.35, 1.0, k)
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.stack([np.choose(i, [table[j][c] for j in range(6)]) for c in range(3)], axis=1)
    return (rgb * 255).astype(np.uint8)


def value_noise(rng, size, octaves):
    """Fractal value noise in [0, 1], [size, size]: bilinear upsampled random grids, halving amplitude."""
    acc = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 4 * 2 ** o
        grid = rng.random((cells + 1, cells + 1))
        up = np.array(Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
        acc += amp * up / 255.0
        total += amp
        amp /= 2
    acc /= total
    return (acc - acc.min()) / (np.ptp(acc) + 1e-9)


def through_palette(x, pal):
    """Maps x in [0, 1] ([H, W]) through a piecewise-linear colour ramp ([k, 3] uint8) -> [H, W, 3]."""
    pos = np.linspace(0, 1, len(pal))
    return np.stack([np.interp(x, pos, pal[:, c]) for c in range(3)], axis=-1).astype(np.uint8)


def stripes(rng, size):
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = rng.uniform(0, np.pi)
    f = rng.uniform(4, 18)
    phase = xx * np.cos(a) + yy * np.sin(a) + 0.05 * np.sin(2 * np.pi * rng.uniform(1, 3) * yy)
    return through_palette((np.sin(2 * np.pi * f * phase) + 1) / 2, palette(rng, rng.integers(2, 5)))


def strokes(rng, size):
    pal = palette(rng, 5)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in pal[0]))
    draw = ImageDraw.Draw(img)
    field = value_noise(rng, size, 2) * 2 * np.pi * rng.uniform(1, 2)
    for _ in range(1400):
        x, y = rng.uniform(0, size, 2)
        colour = tuple(int(c) for c in np.clip(pal[rng.integers(0, 5)] + rng.normal(0, 18, 3), 0, 255))
        width = int(rng.integers(3, 12))
        pts = [(x, y)]
        for _ in range(int(rng.integers(4, 12))):
            a = field[int(y) % size, int(x) % size]
            x, y = x + 6 * np.cos(a), y + 6 * np.sin(a)
            pts.append((x, y))
        draw.line(pts, fill=colour, width=width, joint="curve")
    return np.array(img)


def voronoi(rng, size):
    n = int(rng.integers(20, 120))
    seeds = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (xx[..., None] - seeds[:, 0]) ** 2 + (yy[..., None] - seeds[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.take_along_axis(d, nearest[..., None], -1)[..., 0] ** 0.5
    d2 = np.take_along_axis(d, second[..., None], -1)[..., 0] ** 0.5
    pal = palette(rng, 6)
    img = pal[rng.integers(0, 6, n)][nearest].astype(np.float64)
    edge = np.clip((d2 - d1) / 3.0, 0, 1)[..., None]
    return (img * edge + 20 * (1 - edge)).astype(np.uint8)


def noise(rng, size):
    return through_palette(value_noise(rng, size, 6), palette(rng, int(rng.integers(3, 6))))


def palettes(rng, size):
    """A mosaic of rectangles split recursively, each a palette colour with slight shading."""
    pal = palette(rng, 5)
    img = np.zeros((size, size, 3), np.uint8)
    boxes = [(0, 0, size, size)]
    for _ in range(40):
        x0, y0, x1, y1 = boxes.pop(int(rng.integers(0, len(boxes))))
        if x1 - x0 > y1 - y0:
            m = int(rng.integers(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4 + 1))
            boxes += [(x0, y0, m, y1), (m, y0, x1, y1)]
        else:
            m = int(rng.integers(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4 + 1))
            boxes += [(x0, y0, x1, m), (x0, m, x1, y1)]
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = pal[rng.integers(0, 5)]
        img[y0:y0 + 3, x0:x1] = img[y0:y1, x0:x0 + 3] = 15
    return img


PROCEDURAL = {"strokes": strokes, "stripes": stripes, "voronoi": voronoi, "noise": noise, "palettes": palettes}
PER_KIND = 4


def main():
    debian_root, skimage_root, fixtures, versions_file, out = sys.argv[1:6]
    versions = dict(line.split() for line in open(versions_file) if line.strip())
    rows = []
    for pkg, rel, role in DEBIAN:
        root = os.path.join(debian_root, pkg)
        src = os.path.join(root, rel)
        if os.path.isdir(src):
            src = largest_image(src)
        inner = os.path.relpath(src, root)
        stem = inner.split("/")[3] if pkg == "plasma-workspace-wallpapers" else os.path.splitext(os.path.basename(inner))[0]
        lic = dep5_licence(os.path.join(root, f"usr/share/doc/{pkg}/copyright"), inner)
        save(Image.open(src), out, role, f"{pkg.split('-')[0]}-{stem}", f"debian:{pkg}={versions[pkg]}:/{inner}", lic, rows)
    for name, role, lic in SKIMAGE:
        save(Image.open(os.path.join(skimage_root, "skimage/data", name)), out, role,
             f"skimage-{os.path.splitext(name)[0]}", f"pypi:scikit-image={versions['scikit-image']}:skimage/data/{name}", lic, rows)
    for name, role, lic in FIXTURES:
        save(Image.open(os.path.join(fixtures, name)), out, role, f"fixture-{os.path.splitext(name)[0]}",
             f"shared/fixtures/images/{name}", lic, rows)
    for k, (kind, make) in enumerate(PROCEDURAL.items()):
        for i in range(PER_KIND):
            seed = 1000 * (k + 1) + i
            img = Image.fromarray(make(np.random.default_rng(seed), 512))
            save(img, out, "style", f"procedural-{kind}-{i}", f"weights/dataset.py:{kind}(seed={seed})",
                 "CC0-1.0 (generated by stylestream)", rows)
    rows.sort(key=lambda r: r[2])
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("split\trole\tfile\tsha256\twidth\theight\torigin\tlicence\n")
        for r in rows:
            f.write("\t".join(str(c) for c in r) + "\n")
    for split in ("train", "eval"):
        for role in ("content", "style"):
            n = sum(1 for r in rows if r[0] == split and r[1] == role)
            print(f"{split:5} {role:7} {n:3} images")


if __name__ == "__main__":
    main()
