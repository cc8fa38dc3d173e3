"""Deterministic, learnable synthetic data for the MLPerf Tiny tasks whose real data cannot ship.

Each generator draws class-dependent structure plus nuisance variation and noise from one numpy
seed, so the same seed gives the same arrays on every machine. The difficulty is tuned so the
reference models land near 85-97 %: far above chance, below 100 %, and with classes that are
harder than others (built-in confusable pairs), so the accuracy an optimization loses, and which
class loses it, is visible.
"""

from __future__ import annotations

import numpy as np

from accelbench.models.audio import AD_MIN_SAMPLES, KWS_CLIP_SAMPLES, SAMPLE_RATE_HZ

# --------------------------------------------------------------------------------------------
# Image classification: 32 x 32 x 3 texture patterns
# --------------------------------------------------------------------------------------------

# Ten pattern classes. Colour, contrast, phase and position are random (uninformative), so the
# model must learn the structure. "stripes_wide" vs "stripes_narrow" (same orientation,
# overlapping frequencies) and "rings" vs "ripples" are the deliberately confusable pairs.
IMAGE_CLASSES = (
    "stripes_wide",
    "stripes_vertical",
    "stripes_diagonal",
    "stripes_antidiagonal",
    "checkerboard",
    "rings",
    "spot",
    "stripes_narrow",
    "ripples",
    "smooth_noise",
)


def pattern_images(n: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size, 3)`` float32 in [0, 1] and balanced labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(IMAGE_CLASSES))
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, n)
    tilt = rng.normal(0, np.deg2rad(8), n)
    centre = rng.uniform(-0.25, 0.25, (n, 2))
    patterns = np.empty((n, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        name = IMAGE_CLASSES[label]
        if name.startswith("stripes"):
            angle = {
                "stripes_wide": 0.0,
                "stripes_narrow": 0.0,
                "stripes_vertical": np.pi / 2,
                "stripes_diagonal": np.pi / 4,
                "stripes_antidiagonal": -np.pi / 4,
            }[name] + tilt[i]
            freq = rng.normal(4.6, 0.5) if name == "stripes_narrow" else rng.normal(3.6, 0.5)
            u = np.sin(angle) * xx + np.cos(angle) * yy
            patterns[i] = np.sin(2 * np.pi * freq * u + phase[i])
        elif name == "checkerboard":
            freq = rng.uniform(2.0, 3.5)
            a = tilt[i]
            u = np.cos(a) * xx - np.sin(a) * yy
            v = np.sin(a) * xx + np.cos(a) * yy
            patterns[i] = (
                1.5 * np.sin(2 * np.pi * freq * u + phase[i]) * np.sin(2 * np.pi * freq * v)
            )
        elif name in ("rings", "ripples"):
            r = np.hypot(xx - centre[i, 0], yy - centre[i, 1])
            # Ripples fade with distance; rings do not: a subtle cue under noise.
            freq = rng.normal(4.0, 0.6) if name == "rings" else rng.normal(4.4, 0.6)
            decay = 1.0 if name == "rings" else np.exp(-((r / 0.35) ** 2))
            patterns[i] = np.sin(2 * np.pi * freq * r + phase[i]) * decay
        elif name == "spot":
            radius = rng.uniform(0.1, 0.22)
            r2 = (xx - centre[i, 0]) ** 2 + (yy - centre[i, 1]) ** 2
            patterns[i] = 2.0 * np.exp(-r2 / (2 * radius**2)) - 0.6
        else:  # smooth_noise: upsampled random field, no periodic structure
            coarse = rng.normal(0, 1, (5, 5))
            idx = np.linspace(0, 4, size)
            rows = np.array([np.interp(idx, np.arange(5), c) for c in coarse])
            field = np.array([np.interp(idx, np.arange(5), c) for c in rows.T]).T
            patterns[i] = field / (field.std() + 1e-6)
    colour = rng.uniform(0.25, 1.0, (n, 1, 1, 3)) * rng.choice([-1.0, 1.0], (n, 1, 1, 1))
    contrast = rng.uniform(0.08, 0.2, (n, 1, 1, 1))
    background = rng.uniform(0.3, 0.7, (n, 1, 1, 3))
    noise = rng.normal(0, 0.11, (n, size, size, 3))
    images = background + contrast * patterns[..., None] * colour + noise
    return np.clip(images, 0.0, 1.0).astype(np.float32), labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Keyword spotting: formant-synthesised "words", 1 s at 16 kHz
# --------------------------------------------------------------------------------------------

# MLPerf Tiny's label order (Speech Commands v2, 10 words + silence + unknown).
KWS_CLASSES = (
    "down",
    "go",
    "left",
    "no",
    "off",
    "on",
    "right",
    "stop",
    "up",
    "yes",
    "silence",
    "unknown",
)

# Vowels as (F1, F2) in Hz; a segment glides from its first to its second vowel.
_V = {
    "i": (270, 2290),
    "e": (530, 1840),
    "a": (730, 1090),
    "o": (570, 840),
    "u": (300, 870),
    "uh": (520, 1190),
    "ou": (450, 900),
    "ai": (730, 1090),
    "l": (350, 1000),
    "r": (420, 1250),
    "n": (250, 1300),
}
# Segments: ("v", start_vowel, end_vowel, seconds), ("nasal", seconds) low murmur,
# ("fric", low_hz, high_hz, seconds) noise band, ("burst", seconds) a short broadband click.
_WORDS: dict[str, list[tuple]] = {
    "down": [("burst", 0.02), ("v", "a", "u", 0.26), ("nasal", 0.08)],
    "go": [("burst", 0.02), ("v", "ou", "u", 0.28)],
    "left": [("v", "l", "e", 0.2), ("fric", 1200, 3900, 0.08), ("burst", 0.02)],
    "no": [("nasal", 0.08), ("v", "ou", "u", 0.28)],
    "off": [("v", "o", "o", 0.2), ("fric", 1200, 3900, 0.12)],
    "on": [("v", "a", "o", 0.2), ("nasal", 0.1)],
    "right": [("v", "r", "a", 0.12), ("v", "ai", "i", 0.18), ("burst", 0.02)],
    "stop": [("fric", 2800, 3990, 0.12), ("burst", 0.02), ("v", "a", "a", 0.16), ("burst", 0.02)],
    "up": [("v", "uh", "uh", 0.2), ("burst", 0.02)],
    "yes": [("v", "i", "e", 0.2), ("fric", 2800, 3990, 0.14)],
}


def _voiced(t: np.ndarray, f0: float, f_start, f_end, scale: float) -> np.ndarray:
    """A harmonic tone whose spectral envelope glides between two formant pairs (F1, F2)."""
    progress = t / max(t[-1], 1e-6)
    f0_t = f0 * (1.0 + 0.08 * (0.5 - progress))  # falling intonation
    phase = 2 * np.pi * np.cumsum(f0_t) / SAMPLE_RATE_HZ
    formants = [(s + (e - s) * progress) * scale for s, e in zip(f_start, f_end, strict=True)]
    lowest = min(min(f_start), min(f_end)) * scale - 300
    highest = max(max(f_start), max(f_end)) * scale + 300
    out = np.zeros_like(t)
    # Only harmonics within reach of a formant are audible in the envelope; skipping the rest
    # keeps generation fast.
    for k in range(max(1, int(lowest / f0)), int(min(highest, 3900) / f0) + 1):
        freq = k * f0_t
        gain = sum(np.exp(-(((freq - f) / 120.0) ** 2)) for f in formants)
        out += gain * np.sin(k * phase)
    return out


def _word_audio(rng: np.random.Generator, segments: list[tuple], jitter: float) -> np.ndarray:
    f0 = rng.uniform(90, 240)
    scale = rng.uniform(0.9, 1.12)  # vocal-tract length
    rate = rng.uniform(0.8, 1.25)
    pieces = []
    for seg in segments:
        kind = seg[0]
        seconds = seg[-1] * rate * rng.uniform(1 - jitter, 1 + jitter)
        t = np.arange(max(int(seconds * SAMPLE_RATE_HZ), 32)) / SAMPLE_RATE_HZ
        if kind == "v":
            start = np.array(_V[seg[1]]) * rng.uniform(1 - jitter, 1 + jitter, 2)
            end = np.array(_V[seg[2]]) * rng.uniform(1 - jitter, 1 + jitter, 2)
            piece = _voiced(t, f0, start, end, scale)
        elif kind == "nasal":
            piece = 0.6 * _voiced(t, f0, _V["n"], _V["n"], scale)
        elif kind == "fric":
            spectrum = np.fft.rfft(rng.normal(0, 1, t.size))
            freqs = np.fft.rfftfreq(t.size, 1 / SAMPLE_RATE_HZ)
            spectrum[(freqs < seg[1] * scale) | (freqs > seg[2])] = 0
            piece = np.fft.irfft(spectrum, t.size)
            piece *= 1.2 / (piece.std() + 1e-9)
        else:  # burst
            piece = rng.normal(0, 1.5, t.size) * np.exp(-t / 0.005)
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01 + 0.05)
        pieces.append(piece * ramp)
    audio = np.concatenate(pieces)
    return audio / (np.abs(audio).max() + 1e-9)


def keyword_audio(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clips ``(n, 16000)`` float32 in [-1, 1] and balanced labels over `KWS_CLASSES`."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(KWS_CLASSES))
    clips = np.zeros((n, KWS_CLIP_SAMPLES), dtype=np.float32)
    unknown_pool = [k for k in _V if k not in ("n",)]
    for i, label in enumerate(labels):
        name = KWS_CLASSES[label]
        if name == "silence":
            word = np.zeros(0)
        elif name == "unknown":
            # Other words from the same sound inventory: half are near misses (a keyword with
            # one vowel changed), which makes this the hardest class, as in Speech Commands.
            if rng.random() < 0.5:
                parts = list(_WORDS[KWS_CLASSES[rng.integers(0, 10)]])
                vowels = [j for j, p in enumerate(parts) if p[0] == "v"]
                j = vowels[rng.integers(0, len(vowels))]
                a, b = rng.choice(unknown_pool, 2)
                parts[j] = ("v", a, b, parts[j][-1])
            else:
                parts = []
                for _ in range(rng.integers(2, 4)):
                    if rng.random() < 0.7:
                        a, b = rng.choice(unknown_pool, 2)
                        parts.append(("v", a, b, rng.uniform(0.1, 0.22)))
                    else:
                        parts.append(("fric", 1200, 3990, rng.uniform(0.05, 0.12)))
            word = _word_audio(rng, parts, jitter=0.15)
        else:
            word = _word_audio(rng, _WORDS[name], jitter=0.15)
        if word.size:
            word = word[: KWS_CLIP_SAMPLES - 800]
            onset = rng.integers(0, KWS_CLIP_SAMPLES - word.size)
            clips[i, onset : onset + word.size] = word * rng.uniform(0.15, 0.8)
        noise_level = 10 ** rng.uniform(-2.0, -0.6)
        clips[i] += rng.normal(0, noise_level, KWS_CLIP_SAMPLES)
    return np.clip(clips, -1.0, 1.0), labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Visual wake words: a person-like figure on a textured background, or not
# --------------------------------------------------------------------------------------------

VWW_CLASSES = ("no_person", "person")


def _disc(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def wake_word_images(n: int, seed: int = 0, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size, 3)`` float32 in [0, 1] and labels (1 = a person is there).

    A "person" is a head above a taller-than-wide torso with two legs, at a random place, scale
    and colour. Backgrounds are random gratings and smooth noise; both classes carry distractor
    shapes (discs, boxes), and some negatives hold a head-on-a-wide-box decoy, so the class is the
    arrangement, not the presence of a blob.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 9)
        grating = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        bumps = np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * xx + rng.uniform(0, 1))) * np.sin(
            2 * np.pi * (rng.uniform(0.5, 1.5) * yy + rng.uniform(0, 1))
        )
        base = rng.uniform(0.25, 0.75, 3)
        img = base + 0.1 * grating[..., None] * rng.uniform(-1, 1, 3)
        img += 0.1 * bumps[..., None] * rng.uniform(-1, 1, 3)
        for _ in range(rng.integers(0, 3)):  # distractors in both classes
            cy, cx = rng.uniform(0.1, 0.9, 2)
            if rng.random() < 0.6:
                r = rng.uniform(0.04, 0.12)
                mask = _disc(yy, xx, cy, cx, r, r)
            else:
                h, w = rng.uniform(0.05, 0.25, 2)
                mask = (np.abs(yy - cy) < h / 2) & (np.abs(xx - cx) < w / 2)
            img[mask] = rng.uniform(0, 1, 3)
        height = rng.uniform(0.5, 0.9)
        cy = rng.uniform(height / 2, 1 - height / 2)
        cx = rng.uniform(0.15, 0.85)
        # The figure differs from the background by a random, sometimes small, amount.
        colour = np.clip(base + rng.choice([-1, 1], 3) * rng.uniform(0.2, 0.5, 3), 0, 1)
        head_r = height * 0.12
        head_y = cy - height / 2 + head_r
        torso_h, torso_w = height * 0.4, height * rng.uniform(0.18, 0.26)
        torso_y = head_y + head_r + torso_h / 2
        if labels[i] == 1:
            mask = _disc(yy, xx, head_y, cx, head_r, head_r * 0.85)
            mask |= _disc(yy, xx, torso_y, cx, torso_h / 2, torso_w / 2)
            leg_top, leg_h = torso_y + torso_h * 0.35, height * 0.38
            for side in (-1, 1):
                leg_x = cx + side * torso_w * 0.28
                mask |= (
                    (np.abs(xx - leg_x) < torso_w * 0.16) & (yy > leg_top) & (yy < leg_top + leg_h)
                )
            img[mask] = colour
        elif rng.random() < 0.25:
            # Decoy: a head on a box wider than tall, no legs.
            mask = _disc(yy, xx, head_y, cx, head_r, head_r)
            box_h, box_w = torso_h * 0.5, torso_h * rng.uniform(0.9, 1.4)
            mask |= (np.abs(yy - torso_y) < box_h / 2) & (np.abs(xx - cx) < box_w / 2)
            img[mask] = colour
        images[i] = img
    images += rng.normal(0, 0.08, images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0), labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Anomaly detection: harmonic machine sounds, normal and anomalous
# --------------------------------------------------------------------------------------------

AD_CLASSES = ("normal", "anomaly")


def machine_audio(n_normal: int, n_anomalous: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips ``(n, 3072)`` of 16 kHz machine sound (just the 5 analysed frames) and labels.

    A normal machine hums at a fundamental between 180 and 220 Hz with decaying harmonics and
    broadband noise. An anomaly is one of: a fundamental shifted 6-15 % out of that range, an
    extra inharmonic partial, a rattle of short bursts, or the loss of the even harmonics; their
    strengths vary, so some anomalies are subtle.
    """
    rng = np.random.default_rng(seed)
    n = n_normal + n_anomalous
    labels = rng.permutation(np.r_[np.zeros(n_normal, np.int64), np.ones(n_anomalous, np.int64)])
    t = np.arange(AD_MIN_SAMPLES) / SAMPLE_RATE_HZ
    clips = np.empty((n, AD_MIN_SAMPLES), dtype=np.float32)
    for i, label in enumerate(labels):
        f0 = rng.uniform(180, 220)
        kind = rng.integers(0, 4) if label else -1
        if kind == 0:
            f0 *= rng.choice([-1, 1]) * rng.uniform(0.06, 0.15) + 1
        decay = rng.uniform(0.55, 0.75)
        amps = decay ** np.arange(12) * rng.uniform(0.8, 1.2, 12)
        if kind == 3:
            amps[1::2] *= rng.uniform(0.05, 0.4)
        audio = sum(
            amps[k] * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 2 * np.pi))
            for k in range(12)
        )
        if kind == 1:
            audio += rng.uniform(0.08, 0.4) * np.sin(2 * np.pi * f0 * rng.uniform(3.3, 7.7) * t)
        noise = rng.normal(0, 10 ** rng.uniform(-1.6, -1.0), t.size)
        if kind == 2:
            for start in rng.integers(0, t.size - 64, rng.integers(1, 4)):
                noise[start : start + 64] += rng.normal(0, rng.uniform(0.1, 0.5), 64)
        clips[i] = (audio + noise) * rng.uniform(0.05, 0.2)
    return clips, labels
