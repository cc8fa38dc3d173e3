"""Reference data: synthetic generators (deterministic, learnable) and loaders for users' files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelbench import models
from accelbench.errors import UsageError
from accelbench.models import synthetic
from accelbench.models.data import load_dataset, save_tfrecord, stratified_split

# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "generate",
    [
        lambda seed: synthetic.pattern_images(40, seed),
        lambda seed: synthetic.keyword_audio(24, seed),
        lambda seed: synthetic.wake_word_images(8, seed),
        lambda seed: synthetic.machine_audio(6, 6, seed),
    ],
    ids=["images", "keywords", "wake_words", "machine_sounds"],
)
def test_synthetic_data_is_deterministic_per_seed(generate):
    x1, y1 = generate(3)
    x2, y2 = generate(3)
    x3, _ = generate(4)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and y1.dtype == np.int64
    counts = np.bincount(y1)
    assert counts.max() - counts.min() <= 1  # balanced classes


def _logistic_per_class(features: np.ndarray, y: np.ndarray, n_train: int, n_classes: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[:n_train])
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(features[:n_train]), y[:n_train])
    predicted = clf.predict(scaler.transform(features[n_train:]))
    truth = y[n_train:]
    per_class = np.array([np.mean(predicted[truth == c] == c) for c in range(n_classes)])
    return float(np.mean(predicted == truth)), per_class


def test_synthetic_images_are_learnable_and_some_classes_are_harder():
    x, y = synthetic.pattern_images(700, seed=0)
    # Phase- and colour-invariant features: the low-frequency magnitude spectrum.
    spectrum = np.log1p(np.abs(np.fft.fft2(x.mean(axis=-1)))[:, :10, :10]).reshape(len(x), -1)
    accuracy, per_class = _logistic_per_class(spectrum, y, 500, 10)
    assert accuracy > 0.5  # chance is 0.1
    assert per_class.min() < accuracy - 0.15 < accuracy + 0.1 < per_class.max()


def test_synthetic_keywords_are_learnable_and_unknown_is_hardest():
    audio, y = synthetic.keyword_audio(720, seed=0)
    mfccs = models.mfcc(audio)[..., 0]
    # Onset-invariant summary of each clip's MFCCs.
    stats = np.concatenate([mfccs.mean(1), mfccs.std(1), mfccs.max(1)], axis=1)
    accuracy, per_class = _logistic_per_class(stats, y, 540, 12)
    assert accuracy > 0.5  # chance is 1/12
    assert per_class[synthetic.KWS_CLASSES.index("unknown")] < accuracy - 0.2
    assert per_class[synthetic.KWS_CLASSES.index("silence")] > 0.9


def test_builtin_datasets_fit_their_specs():
    for name in ("ic_resnet8", "ad_autoencoder", "digits_cnn", "breast_cancer_mlp"):
        spec = models.get_spec(name)
        data = spec.load_data(seed=0)
        assert data.x_train.shape[1:] == spec.input_shape == data.x_test.shape[1:]
        assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
        assert data.class_names == spec.class_names
        assert len(set(data.y_test)) == spec.num_classes
    cancer = models.get_spec("breast_cancer_mlp").load_data()
    np.testing.assert_allclose(cancer.x_train.mean(axis=0), 0.0, atol=1e-4)  # standardized
    digits = models.get_spec("digits_cnn").load_data()
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0


def test_stratified_split_is_deterministic_and_keeps_class_shares():
    y = np.repeat(np.arange(3), [50, 30, 20])
    train, test = stratified_split(y, seed=1)
    again, _ = stratified_split(y, seed=1)
    other, _ = stratified_split(y, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert np.bincount(y[test]).tolist() == [10, 6, 4]
    assert sorted(np.r_[train, test].tolist()) == list(range(100))


# ---------------------------------------------------------------------------------------------
# Loaders: each layout, read back
# ---------------------------------------------------------------------------------------------


def _digits_arrays(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 64), dtype=np.float32), np.arange(n) % 10


def test_npz_with_splits_reshapes_flat_rows(tmp_path: Path):
    x, y = _digits_arrays()
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    data = models.get_spec("digits_cnn").load_data(str(path))
    assert data.x_train.shape == (30, 8, 8, 1) and data.x_test.shape == (10, 8, 8, 1)
    np.testing.assert_array_equal(data.x_test.reshape(10, 64), x[30:])
    assert data.y_test.tolist() == y[30:].tolist()
    assert str(path) in data.source


def test_npz_x_y_is_split_80_20_and_uint8_is_scaled(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 8, 8, 1), dtype=np.uint8)
    y = np.arange(50) % 10
    path = tmp_path / "xy.npz"
    np.savez(path, x=x, y=y)
    spec = models.get_spec("digits_cnn")
    data = spec.load_data(str(path), seed=3)
    assert (len(data.x_train), len(data.x_test)) == (40, 10)
    assert np.bincount(data.y_test, minlength=10).tolist() == [1] * 10
    assert data.x_train.max() <= 1.0 and data.x_train.max() > 0.9
    again = spec.load_data(str(path), seed=3)
    assert np.array_equal(again.x_test, data.x_test)


def test_npz_raw_audio_goes_through_the_keyword_front_end(tmp_path: Path):
    audio, y = synthetic.keyword_audio(24, seed=1)
    path = tmp_path / "kws.npz"
    np.savez(path, x_train=audio[:12], y_train=y[:12], x_test=audio[12:], y_test=y[12:])
    data = models.get_spec("kws_dscnn").load_data(str(path))
    assert data.x_train.shape == (12, 49, 10, 1)
    np.testing.assert_allclose(data.x_test, models.mfcc(audio[12:]), rtol=1e-5, atol=1e-4)


def test_anomaly_data_trains_on_normals_only(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 640)).astype(np.float32)
    y = (np.arange(40) % 4 == 0).astype(int)  # 10 anomalies
    path = tmp_path / "ad.npz"
    np.savez(path, x=x, y=y)
    data = models.get_spec("ad_autoencoder").load_data(str(path))
    assert set(data.y_train) == {0}
    assert int(data.y_test.sum()) == 10  # every anomaly is in the test split
    assert len(data.x_train) + len(data.x_test) == 40


def test_csv_with_split_column_and_standardization(tmp_path: Path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(5.0, 2.0, (30, 30)), columns=[f"f{i}" for i in range(30)])
    frame["label"] = np.arange(30) % 2
    frame["split"] = ["test" if i % 5 == 0 else "train" for i in range(30)]
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    spec = models.get_spec("breast_cancer_mlp")
    raw = load_dataset(path, spec)
    assert (len(raw.x_train), len(raw.x_test)) == (24, 6)
    np.testing.assert_allclose(raw.x_test[0], frame.iloc[0, :30].to_numpy(), rtol=1e-6)
    data = spec.load_data(str(path))  # the spec standardizes, as for its built-in data
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)


def test_parquet_with_class_name_labels(tmp_path: Path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 30)), columns=[f"f{i}" for i in range(30)])
    frame["label"] = ["malignant", "benign"] * 10
    path = tmp_path / "cancer.parquet"
    frame.to_parquet(path)
    data = load_dataset(path, models.get_spec("breast_cancer_mlp"))
    assert (len(data.x_train), len(data.x_test)) == (16, 4)
    assert sorted(set(data.y_train)) == [0, 1]  # malignant=0, benign=1: the spec's order


def test_tfrecord_round_trip(tmp_path: Path):
    x, y = _digits_arrays(20)
    path = tmp_path / "digits.tfrecord"
    save_tfrecord(path, x, y, split=["train"] * 15 + ["test"] * 5)
    data = load_dataset(path, models.get_spec("digits_cnn"))
    assert data.x_train.shape == (15, 8, 8, 1)
    np.testing.assert_array_equal(data.x_test.reshape(5, 64), x[15:])
    assert data.y_test.tolist() == y[15:].tolist()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(rgb.astype(np.uint8)))


def test_image_folder_train_test_layout_maps_spec_class_names(tmp_path: Path):
    root = tmp_path / "vww"
    for split in ("train", "test"):
        for name, value in (("person", 200), ("no_person", 40)):
            for i in range(2):
                _write_png(root / split / name / f"{i}.png", np.full((40, 30, 3), value))
    data = models.get_spec("vww_mobilenet").load_data(str(root))
    assert data.x_train.shape == (4, 96, 96, 3)
    assert data.class_names == ("no_person", "person")
    bright = data.x_test.mean(axis=(1, 2, 3)) > 0.5
    assert np.array_equal(bright, data.y_test == 1)  # person folder -> class 1
    np.testing.assert_allclose(data.x_test.max(), 200 / 255, atol=1e-3)


def test_image_folder_flat_layout_grey_and_resized(tmp_path: Path):
    root = tmp_path / "digits"
    for digit in range(10):
        for i in range(3):
            _write_png(root / str(digit) / f"{i}.png", np.full((16, 16, 3), digit * 20))
    data = models.get_spec("digits_cnn").load_data(str(root))
    assert data.x_train.shape == (20, 8, 8, 1) and data.x_test.shape == (10, 8, 8, 1)
    np.testing.assert_allclose(data.x_test[:, 0, 0, 0], data.y_test * 20 / 255, atol=2e-3)


def _write_wav(path: Path, audio: np.ndarray, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())


def test_audio_folder_for_keywords(tmp_path: Path):
    audio, y = synthetic.keyword_audio(24, seed=2)
    root = tmp_path / "speech"
    for i, (clip, label) in enumerate(zip(audio, y, strict=True)):
        # Clips shorter than 1 s are padded, as Speech Commands' are.
        _write_wav(root / synthetic.KWS_CLASSES[label] / f"{i}.wav", clip[: 12000 + 100 * i])
    data = models.get_spec("kws_dscnn").load_data(str(root))
    assert data.x_train.shape == (12, 49, 10, 1) and len(data.x_test) == 12
    assert data.class_names == synthetic.KWS_CLASSES


def test_audio_folder_for_anomaly_detection(tmp_path: Path):
    clips, y = synthetic.machine_audio(6, 3, seed=0)
    root = tmp_path / "machine"
    for i, (clip, label) in enumerate(zip(clips, y, strict=True)):
        _write_wav(root / ("anomaly" if label else "normal") / f"{i}.wav", clip)
    data = models.get_spec("ad_autoencoder").load_data(str(root))
    assert data.x_train.shape[1:] == (640,)
    assert set(data.y_train) == {0} and int(data.y_test.sum()) == 3


# ---------------------------------------------------------------------------------------------
# Loaders: bad input is a UsageError naming the file and the problem
# ---------------------------------------------------------------------------------------------


def _bad(path: Path, name: str = "digits_cnn") -> str:
    with pytest.raises(UsageError) as info:
        load_dataset(path, models.get_spec(name))
    message = str(info.value)
    assert str(path) in message or path.name in message
    return message


def test_missing_empty_and_unknown_files(tmp_path: Path):
    assert "no such file" in _bad(tmp_path / "nope.npz")
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "empty" in _bad(tmp_path / "empty.csv")
    (tmp_path / "data.txt").write_text("1,2,3")
    assert "unsupported data format" in _bad(tmp_path / "data.txt")
    (tmp_path / "broken.npz").write_bytes(b"not a zip archive at all")
    assert "not a readable .npz" in _bad(tmp_path / "broken.npz")
    (tmp_path / "broken.tfrecord").write_bytes(b"\x00garbage" * 10)
    assert "TFRecord" in _bad(tmp_path / "broken.tfrecord")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 nope")
    assert "Parquet" in _bad(tmp_path / "broken.parquet")


def test_schema_mismatches(tmp_path: Path):
    x, y = _digits_arrays()
    np.savez(tmp_path / "keys.npz", inputs=x, labels=y)
    assert "expected x_train" in _bad(tmp_path / "keys.npz")
    np.savez(tmp_path / "wide.npz", x=np.zeros((20, 28, 28)), y=np.arange(20) % 10)
    assert "(28, 28)" in _bad(tmp_path / "wide.npz") and "(8, 8, 1)" in _bad(tmp_path / "wide.npz")
    np.savez(tmp_path / "labels.npz", x=x, y=y + 5)
    assert "labels run from 5 to 14" in _bad(tmp_path / "labels.npz")

    frame = pd.DataFrame(np.zeros((10, 29)), columns=[f"f{i}" for i in range(29)])
    frame.to_csv(tmp_path / "nolabel.csv", index=False)
    assert "no 'label' column" in _bad(tmp_path / "nolabel.csv", "breast_cancer_mlp")
    frame["label"] = 0
    frame.to_csv(tmp_path / "narrow.csv", index=False)
    assert "(29,)" in _bad(tmp_path / "narrow.csv", "breast_cancer_mlp")
    frame["f29"] = "x"
    frame.to_csv(tmp_path / "text.csv", index=False)
    assert "not numeric" in _bad(tmp_path / "text.csv", "breast_cancer_mlp")
    frame["f29"] = 1.0
    frame["label"] = "maybe"
    frame.to_csv(tmp_path / "names.csv", index=False)
    assert "'maybe'" in _bad(tmp_path / "names.csv", "breast_cancer_mlp")

    save_tfrecord(tmp_path / "short.tfrecord", np.zeros((4, 60)), np.zeros(4, dtype=int))
    assert "(60,)" in _bad(tmp_path / "short.tfrecord")


def test_folder_mismatches(tmp_path: Path):
    root = tmp_path / "three"
    for name in ("a", "b", "c"):
        _write_png(root / name / "0.png", np.zeros((8, 8, 3)))
    assert "3 class folders" in _bad(root, "vww_mobilenet")
    (tmp_path / "nofiles" / "person").mkdir(parents=True)
    (tmp_path / "nofiles" / "no_person").mkdir(parents=True)
    assert "no image files" in _bad(tmp_path / "nofiles", "vww_mobilenet")
    assert "takes a table" in _bad(root, "breast_cancer_mlp")
    bad_rate = tmp_path / "speech" / "yes" / "clip.wav"
    for name in synthetic.KWS_CLASSES:
        _write_wav(tmp_path / "speech" / name / "ok.wav", np.zeros(16000))
    _write_wav(bad_rate, np.zeros(8000), rate=8000)
    with pytest.raises(UsageError, match="8000 Hz.*16000 Hz") as info:
        load_dataset(tmp_path / "speech", models.get_spec("kws_dscnn"))
    assert str(bad_rate) in str(info.value)
    (tmp_path / "speech" / "no" / "junk.wav").write_bytes(b"RIFF nonsense")
    bad_rate.unlink()
    with pytest.raises(UsageError, match="junk.wav.*not a readable WAV"):
        load_dataset(tmp_path / "speech", models.get_spec("kws_dscnn"))
