"""TrainConfig: YAML/JSON round trips, --set typing, presets, errors that name the key."""

from __future__ import annotations

import json

import pytest
import yaml

from celebseg_utils.engine import config as C
from celebseg_utils.errors import CelebsegError


def _custom() -> C.TrainConfig:
    return C.apply_overrides(C.preset_config("colab-t4"), [
        "loss.name=focal", "loss.kwargs.gamma=2", "loss.class_weights=enet",
        "optimizer.learning_rate=3e-4", "optimizer.schedule=cosine", "optimizer.clipnorm=1",
        "data.sample_weights=per_image", "devices=[/cpu:0, /cpu:1]", "mixed_precision=false",
        "jit_compile=true", "steps_per_epoch=7", "model.weights=none", "run_dir=/tmp/r 1"])


def test_overrides_are_typed_by_the_field():
    c = _custom()
    assert c.loss.name == "focal" and c.loss.kwargs == {"gamma": 2}
    # PyYAML reads "3e-4" as a string: the float field makes it a float.
    assert c.optimizer.learning_rate == 0.0003 and isinstance(c.optimizer.learning_rate, float)
    assert c.optimizer.clipnorm == 1.0 and isinstance(c.optimizer.clipnorm, float)
    assert c.devices == ["/cpu:0", "/cpu:1"]
    assert c.mixed_precision is False and c.jit_compile is True
    assert c.steps_per_epoch == 7 and c.model.weights is None and c.run_dir == "/tmp/r 1"
    # untouched preset values stay
    assert c.model.backbone == "resnet50_v2" and c.image_size == 512 and c.batch_size == 8


def test_yaml_round_trip(tmp_path):
    c = _custom()
    assert C.config_from_yaml(C.config_to_yaml(c)) == c
    path = C.save_config(c, tmp_path / "run.yaml")
    assert C.load_config(path) == c
    data = yaml.safe_load(path.read_text())
    assert data["optimizer"]["learning_rate"] == 0.0003 and data["model"]["weights"] is None
    assert list(data)[:4] == ["data", "model", "loss", "optimizer"]


def test_json_round_trip(tmp_path):
    c = _custom()
    assert C.config_from_json(C.config_to_json(c)) == c
    path = C.save_config(c, tmp_path / "run.json")
    assert json.loads(path.read_text())["loss"]["kwargs"] == {"gamma": 2}
    assert C.load_config(path) == c


def test_partial_file_takes_defaults(tmp_path):
    (tmp_path / "p.yaml").write_text("batch_size: 2\nloss:\n  name: dice\n")
    c = C.load_config(tmp_path / "p.yaml")
    assert (c.batch_size, c.loss.name, c.epochs, c.optimizer.schedule) == (2, "dice", 30, "poly")


def test_kwargs_merge_with_preset_and_replace_scalars():
    base = C.apply_overrides(C.TrainConfig(), ["loss.kwargs={smooth: 1.0}"])
    c = C.apply_overrides(base, ["loss.kwargs.ce_weight=0.5"])
    assert c.loss.kwargs == {"smooth": 1.0, "ce_weight": 0.5}
    assert base.loss.kwargs == {"smooth": 1.0}  # overrides never mutate their input


@pytest.mark.parametrize("item, words", [
    ("optimizer.lr=1", ["optimizer.lr", "learning_rate", "weight_decay", "valid keys of optimizer"]),
    ("batchsize=2", ["batchsize", "batch_size", "run_dir"]),
    ("batch_size=two", ["batch_size", "integer", "two"]),
    ("batch_size=2.5", ["batch_size", "integer"]),
    ("loss.name=hinge", ["loss.name", "hinge", "sparse_ce", "lovasz"]),
    ("strategy=horovod", ["strategy", "mirrored", "multi_worker", "tpu"]),
    ("mixed_precision=maybe", ["mixed_precision", "auto"]),
    ("epochs=0", ["epochs", "positive"]),
    ("batch_size", ["KEY=VALUE"]),
    ("data=3", ["data", "mapping"]),
    ("loss=dice", ["loss", "mapping", "class_weights"]),
    ("model.backbone=resnet18", ["model.backbone", "resnet18", "resnet50_v2",
                                 "mobilenet_v3_large"]),
    ("model.library=torchvision", ["model.library", "keras_cv", "keras_hub"]),
])
def test_bad_overrides_name_the_key(item, words):
    with pytest.raises(CelebsegError) as err:
        C.apply_overrides(C.TrainConfig(), [item])
    for word in words:
        assert word in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(CelebsegError, match="not found"):
        C.load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model:\n  backbone: [unclosed\n")
    with pytest.raises(CelebsegError, match="bad.yaml is not valid YAML"):
        C.load_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text('{"model": {"depth": 3}}')
    with pytest.raises(CelebsegError, match=r"'model.depth' in .*bad.json; valid keys of model"):
        C.load_config(tmp_path / "bad.json")


def test_presets_resolve():
    names = C.list_presets()
    assert {"colab-t4", "colab-a100", "tpu", "cpu-demo"} <= set(names)
    for loss in C.LOSSES:
        c = C.preset_config(f"study-{loss}")
        assert c.loss.name == loss and c.run_dir == f"runs/study/{loss}"
    t4 = C.preset_config("colab-t4")
    assert (t4.model.backbone, t4.image_size, t4.batch_size, t4.mixed_precision) == \
        ("resnet50_v2", 512, 8, "auto")
    a100 = C.preset_config("colab-a100")
    assert a100.batch_size > t4.batch_size and a100.jit_compile is True
    tpu = C.preset_config("tpu")
    assert tpu.strategy == "tpu" and tpu.batch_size >= 64 and tpu.data.prepared.startswith("gs://")
    demo = C.preset_config("cpu-demo")
    assert demo.model.backbone == "mobilenet_v3_large" and demo.image_size == 128
    assert demo.model.weights is None and demo.epochs <= 40
    # presets are data: resolving one never changes the table
    C.apply_overrides(demo, ["image_size=64"])
    assert C.preset_config("cpu-demo").image_size == 128
    with pytest.raises(CelebsegError, match="unknown preset 'gpu'.*colab-t4"):
        C.preset_config("gpu")


def test_resolve_order(tmp_path):
    C.save_config(C.preset_config("cpu-demo"), tmp_path / "c.yaml")
    c = C.resolve_config(config_file=tmp_path / "c.yaml", overrides=["epochs=2"], run_dir="/x")
    assert (c.epochs, c.run_dir, c.image_size) == (2, "/x", 128)
    with pytest.raises(CelebsegError, match="not both"):
        C.resolve_config(config_file=tmp_path / "c.yaml", preset="tpu")


def test_config_diff():
    a = C.preset_config("cpu-demo")
    b = C.apply_overrides(a, ["optimizer.learning_rate=0.01", "run_dir=/elsewhere"])
    assert C.config_diff(a, b) == ["optimizer.learning_rate: 0.004 -> 0.01"]
