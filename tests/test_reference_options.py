"""The reference CycleGAN code's data options (preprocess, no_flip, serial_batches, max_dataset_size, direction,
num_threads) keep their names and meanings; sizes are checked against the reference's rules worked by hand."""

import random
from pathlib import Path

import numpy as np
import pytest

from unveil.config import validate_config
from unveil.data.datasets import Augment, UnpairedDataset, load_samples, select
from unveil.errors import UnveilError
from unveil.methods.cyclegan import CycleGANConfig
from unveil.methods.registry import get_method, load_restorer
from unveil.train.loop import EpochSampler, TrainConfig, train

from conftest import tiny_prepared


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prepared(tmp_path_factory.mktemp("tiny"), fraction=0.5)


def _image(height: int, width: int) -> np.ndarray:
    """An image whose every pixel is unique, so a crop can be located in it."""
    index = np.arange(height * width, dtype=np.int64).reshape(height, width)
    return np.stack([index % 256, index // 256 % 256, np.full_like(index, 7)], axis=2).astype(np.uint8)


@pytest.mark.parametrize(("preprocess", "load", "crop", "expected"), [
    ("resize_and_crop", 72, 64, (64, 64)),
    ("crop", 72, 64, (64, 64)),                    # no resize, a 64 px window
    ("scale_width", 50, 30, (40, 50)),             # width 50, height 50 * 80 / 100 = 40
    ("scale_width", 50, 45, (45, 50)),             # height at least crop_size
    ("scale_width_and_crop", 50, 30, (30, 30)),
    ("none", 72, 64, (80, 100)),                   # 80 x 100 are multiples of 4 already
])
def test_preprocess_sizes_follow_the_reference(preprocess: str, load: int, crop: int, expected: tuple) -> None:
    image = _image(80, 100)
    (out,) = Augment(load, crop, flip=False, preprocess=preprocess)([image], random.Random(0))
    assert out.shape[:2] == expected


def test_crop_takes_a_window_of_the_unresized_image_and_masks_follow() -> None:
    image, mask = _image(80, 100), np.zeros((80, 100), np.uint8)
    mask[10:30, 20:60] = 255
    rng = random.Random(3)
    out, out_mask = Augment(crop_size=48, flip=False, preprocess="crop")([image, mask], rng)
    first = int(out[0, 0, 0]) + 256 * int(out[0, 0, 1])
    y, x = divmod(first, 100)
    assert np.array_equal(out, image[y:y + 48, x:x + 48]) and np.array_equal(out_mask, mask[y:y + 48, x:x + 48])
    centred, _ = Augment(crop_size=48, train=False, preprocess="crop")([image, mask], random.Random(0))
    assert np.array_equal(centred, image[16:64, 26:74])


def test_none_rounds_sides_to_multiples_of_four() -> None:
    assert Augment(preprocess="none").resized(77, 102) == (76, 104)  # round(19.25) * 4, round(25.5) * 4
    assert Augment(preprocess="none").resized(1, 1) == (4, 4)


def test_flip_is_random_in_training_and_never_otherwise() -> None:
    image = _image(40, 40)
    flipped = [not np.array_equal(Augment(40, 40)([image], random.Random(seed))[0], image) for seed in range(40)]
    assert 5 < sum(flipped) < 35
    for seed in range(10):
        assert np.array_equal(Augment(40, 40, flip=False)([image], random.Random(seed))[0], image)
        assert np.array_equal(Augment(40, 40, train=False)([image], random.Random(seed))[0], image)


def test_crop_larger_than_the_image_is_one_clear_error() -> None:
    with pytest.raises(UnveilError, match="preprocess crop: the images are 40x30 after resizing, smaller than "
                                          "crop_size 32"):
        Augment(crop_size=32, preprocess="crop")([_image(30, 40)], random.Random(0))


def test_reference_option_names_are_understood() -> None:
    config = TrainConfig.model_validate({"no_flip": True, "num_threads": 3})
    assert config.flip is False and config.num_workers == 3
    assert TrainConfig.model_validate({"no_flip": False}).flip is True
    with pytest.raises(UnveilError, match="no_flip and flip contradict each other"):
        validate_config(TrainConfig, {"no_flip": True, "flip": True}, source="test.yaml")


def test_serial_batches_pair_a_i_with_b_i_in_order(samples: Path) -> None:
    table, root = load_samples(samples)
    a, b = select(table, {"condition": "occluded"}), select(table, {"condition": "normal"})
    dataset = UnpairedDataset(root, a, b, Augment(36, 32), serial=True)
    for i in (0, 1, len(dataset) - 1):
        item = dataset[i]
        assert item["A_path"] == a["image"].iloc[i % len(a)] and item["B_path"] == b["image"].iloc[i % len(b)]
    assert EpochSampler(7, seed=1, epoch=3, shuffle=False).indices == list(range(7))
    assert EpochSampler(7, seed=1, epoch=3, rank=1, world=2, shuffle=False).indices == [1, 3, 5, 0]


def test_max_dataset_size_and_direction(samples: Path) -> None:
    table, root = load_samples(samples)
    config = TrainConfig(model=CycleGANConfig(ngf=4, ndf=4), load_size=36, crop_size=32, max_dataset_size=3)
    method = get_method("cyclegan").method(config, table, root, 0)
    occluded = select(table, {"condition": "occluded"}, "train")["image"].tolist()
    assert method.train_set.a == occluded[:3] and len(method.train_set.b) == 3
    swapped = get_method("cyclegan").method(config.model_copy(update={"direction": "BtoA", "max_dataset_size": None}), table, root, 0)
    assert swapped.train_set.a == select(table, {"condition": "normal"}, "train")["image"].tolist()
    assert swapped.train_set.b == occluded


@pytest.mark.parametrize(("preprocess", "face_size"), [("resize_and_crop", 32), ("crop", 36), ("none", 36)])
def test_restore_feeds_the_face_at_the_scale_training_saw(samples: Path, tmp_path: Path, preprocess: str,
                                                          face_size: int) -> None:
    config = TrainConfig(model=CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks"), n_epochs=1, n_epochs_decay=0,
                         load_size=36, crop_size=32, preprocess=preprocess, time_limit=1e-9, n_samples=1)
    train(samples, tmp_path / preprocess, config, progress=False)  # stops after one batch with 'latest' saved
    restorer = load_restorer(tmp_path / preprocess / "checkpoints" / "latest.safetensors", device="cpu")
    assert restorer.size == face_size  # the prepared crops are 36 px
    (out,) = restorer([np.zeros((face_size, face_size, 3), np.uint8)])
    assert out.shape == (face_size, face_size, 3)


def test_classifier_refuses_other_preprocessing(samples: Path) -> None:
    with pytest.raises(UnveilError, match="The classifier takes preprocess resize_and_crop only"):
        train(samples, Path("/nonexistent/run"), TrainConfig(method="classifier", preprocess="crop"), progress=False)
