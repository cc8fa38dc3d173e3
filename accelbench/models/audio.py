"""Audio front ends in tf.signal: MFCCs for keyword spotting, log-mel frames for anomaly detection.

Both run on the data side (before the model), as in MLPerf Tiny: the deployed model's input is
the feature tensor, so every runtime and every optimization sees the same features.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

SAMPLE_RATE_HZ = 16000

# MLPerf Tiny keyword spotting (Speech Commands): 1 s clips, 30 ms windows every 20 ms, 40 mel
# bands between 20 Hz and 4 kHz, the first 10 cepstral coefficients -> 49 x 10 features.
KWS_CLIP_SAMPLES = 16000
KWS_WINDOW_SAMPLES = 480
KWS_STRIDE_SAMPLES = 320
KWS_MEL_BINS = 40
KWS_MFCC_COEFFICIENTS = 10
KWS_FEATURE_SHAPE = (49, 10, 1)

# MLPerf Tiny anomaly detection (ToyADMOS / DCASE 2020 task 2 baseline): 1024-sample windows every
# 512 samples, 128 mel bands, power in dB, 5 consecutive frames joined into one 640-value vector.
# The EEMBC port scores the 5 frames at the centre of a clip; so does this front end.
AD_WINDOW_SAMPLES = 1024
AD_STRIDE_SAMPLES = 512
AD_MEL_BINS = 128
AD_FRAMES = 5
AD_FEATURES = AD_MEL_BINS * AD_FRAMES
AD_MIN_SAMPLES = AD_WINDOW_SAMPLES + (AD_FRAMES - 1) * AD_STRIDE_SAMPLES


def _batched(audio: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise ValueError(
            f"{what} takes one clip (samples,) or a batch (n, samples), got {array.shape}"
        )
    return (array[None, :], True) if array.ndim == 1 else (array, False)


def mfcc(audio: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """MFCC features of 1 s of 16 kHz mono audio in [-1, 1]: ``(16000,) -> (49, 10, 1)``.

    A batch ``(n, 16000)`` gives ``(n, 49, 10, 1)``. Shorter clips are zero-padded at the end and
    longer ones cut, as Speech Commands clips are.
    """
    import tensorflow as tf

    clips, single = _batched(audio, "mfcc")
    clips = _fit_length(clips, KWS_CLIP_SAMPLES)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=KWS_MEL_BINS,
        num_spectrogram_bins=257,  # fft_length 512 (next power of two above 480) // 2 + 1
        sample_rate=SAMPLE_RATE_HZ,
        lower_edge_hertz=20.0,
        upper_edge_hertz=4000.0,
    )
    out = []
    for mel in _mel_batches(
        clips,
        mel_matrix,
        KWS_WINDOW_SAMPLES,
        KWS_STRIDE_SAMPLES,
        512,
        power=1,
        batch_size=batch_size,
    ):
        log_mel = tf.math.log(mel + 1e-6)
        coefficients = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)
        out.append(coefficients[..., :KWS_MFCC_COEFFICIENTS].numpy())
    features = np.concatenate(out)[..., None].astype(np.float32)
    return features[0] if single else features


def machine_logmel(audio: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Anomaly-detection features of 16 kHz mono audio: the 5 centre log-mel frames, ``(640,)``.

    Each clip needs at least 3072 samples (5 windows); a batch ``(n, samples)`` gives
    ``(n, 640)``, frame-major (128 bands of frame 0, then frame 1, ...) like the DCASE baseline.
    Power is in dB (10 log10); the mel scale is tf.signal's (HTK), 0 Hz to 8 kHz.
    """
    import tensorflow as tf

    clips, single = _batched(audio, "machine_logmel")
    if clips.shape[1] < AD_MIN_SAMPLES:
        raise ValueError(f"machine_logmel needs at least {AD_MIN_SAMPLES} samples per clip")
    n_frames = 1 + (clips.shape[1] - AD_WINDOW_SAMPLES) // AD_STRIDE_SAMPLES
    first = (n_frames - AD_FRAMES) // 2
    start_sample = first * AD_STRIDE_SAMPLES
    clips = clips[:, start_sample : start_sample + AD_MIN_SAMPLES]
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=AD_MEL_BINS,
        num_spectrogram_bins=AD_WINDOW_SAMPLES // 2 + 1,
        sample_rate=SAMPLE_RATE_HZ,
        lower_edge_hertz=0.0,
        upper_edge_hertz=SAMPLE_RATE_HZ / 2,
    )
    out = []
    for mel in _mel_batches(
        clips,
        mel_matrix,
        AD_WINDOW_SAMPLES,
        AD_STRIDE_SAMPLES,
        AD_WINDOW_SAMPLES,
        power=2,
        batch_size=batch_size,
    ):
        # The epsilon keeps silent bands finite: 10 log10(1e-10) = -100 dB.
        db = 10.0 * tf.math.log(mel + 1e-10) / tf.math.log(10.0)
        out.append(tf.reshape(db, (-1, AD_FEATURES)).numpy())
    features = np.concatenate(out).astype(np.float32)
    return features[0] if single else features


def _mel_batches(
    clips: np.ndarray,
    mel_matrix: Any,
    frame_length: int,
    frame_step: int,
    fft_length: int,
    *,
    power: Literal[1, 2],
    batch_size: int,
) -> Iterator[Any]:
    """Mel spectrograms (|STFT| ** power onto the mel matrix), a batch of clips at a time.

    Batches bound the memory of the complex STFT for large folders.
    """
    import tensorflow as tf

    for start in range(0, len(clips), batch_size):
        stft = tf.signal.stft(
            clips[start : start + batch_size],
            frame_length=frame_length,
            frame_step=frame_step,
            fft_length=fft_length,
        )
        magnitude = tf.abs(stft)
        spectrum = magnitude if power == 1 else tf.math.square(magnitude)
        yield tf.tensordot(spectrum, mel_matrix, 1)


def _fit_length(clips: np.ndarray, samples: int) -> np.ndarray:
    if clips.shape[1] >= samples:
        return np.ascontiguousarray(clips[:, :samples])
    padded = np.zeros((clips.shape[0], samples), dtype=np.float32)
    padded[:, : clips.shape[1]] = clips
    return padded
