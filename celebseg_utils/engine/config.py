"""Training configuration: one dataclass tree, YAML/JSON round trips, presets, ``--set``.

A :class:`TrainConfig` is plain data. It is written beside every run (``RUN/config.yaml``)
and read back from YAML or JSON; an unknown key is an error that lists the valid ones.
``--set key=value`` overrides use dotted keys and are parsed by YAML, then coerced to the
field's declared type (so ``3e-4`` is a float and ``none`` is None where None is allowed).

>>> cfg = resolve_config(preset="cpu-demo", overrides=["optimizer.learning_rate=3e-4",
...                                                     "loss.name=dice", "batch_size=4"])
>>> cfg.optimizer.learning_rate, cfg.loss.name, cfg.batch_size, cfg.model.backbone
(0.0003, 'dice', 4, 'mobilenet_v3_large')
>>> config_from_yaml(config_to_yaml(cfg)) == cfg
True
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import yaml

from celebseg_utils.errors import CelebsegError
# ``LOSSES``: the loss names of ``celebseg_utils.models.losses.get_loss``, from the one
# table of loss recipes (``models/recipes.py``).
from celebseg_utils.models.recipes import LOSS_NAMES as LOSSES, RECIPES

#: Class-weight schemes found in ``stats.json`` (``class_weights``).
CLASS_WEIGHT_SCHEMES = ("inv_freq", "median_freq", "enet")
#: Per-pixel sample-weight schemes of ``pipeline.make_dataset``.
SAMPLE_WEIGHT_SCHEMES = ("per_image",) + CLASS_WEIGHT_SCHEMES
SCHEDULES = ("poly", "cosine", "constant")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


@dataclass
class DataConfig:
    """Where the prepared data is and how batches are made (TFRecord shards used if present)."""

    prepared: str = "data/prepared"
    train_split: str = "train"
    val_split: str = "val"
    augment: bool = True
    #: None, "per_image", "median_freq", "inv_freq" or "enet" (train split only).
    sample_weights: Optional[str] = None
    #: Label encoding of the training batches: "int" (B,H,W,1) or "onehot" (B,H,W,19).
    encoding: str = "int"
    #: A split that ``train`` evaluates its best model on at the end (RUN/test/results.json);
    #: None: no test evaluation inside the run (``celebseg evaluate`` does it afterwards).
    test_split: Optional[str] = None


@dataclass
class ModelConfig:
    """Arguments of ``deeplab.build_model``."""

    backbone: str = "resnet50_v2"
    library: str = "keras_cv"
    #: None (random init), "imagenet" (needs network once) or a local preset folder.
    weights: Optional[str] = None
    #: Momentum of every BatchNormalization layer (None: the library's own). keras-cv's
    #: MobileNetV3 ships 0.999, too slow for the moving statistics of a short run.
    bn_momentum: Optional[float] = 0.99
    #: Dilation rates of the ASPP's 3x3 branches (None: DeepLab's [6, 12, 18], sized for
    #: 512 px inputs; small inputs want small rates, see ``models.build_model``).
    aspp_rates: Optional[list] = None
    #: keras-cv library only: "keras_cv" (its SpatialPyramidPooling: no XLA), "standard" (the
    #: same branches, XLA-compilable) or "separable" (DeepLabV3+'s atrous separable convs).
    aspp: str = "keras_cv"
    #: Channels of the ASPP's branches and output, and of the decoder's 1x1 conv (DeepLab: 256).
    aspp_channels: int = 256
    decoder_channels: int = 256


@dataclass
class LossConfig:
    """Arguments of ``losses.get_loss``; class weights come from the prepared ``stats.json``."""

    name: str = "sparse_ce"
    #: "auto" (median_freq for weighted_ce, none otherwise), None, or a scheme of stats.json.
    class_weights: Optional[str] = "auto"
    kwargs: dict = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    """AdamW with a linear warm-up, then poly or cosine decay (per optimizer step)."""

    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    clipnorm: Optional[float] = None
    schedule: str = "poly"
    warmup_epochs: float = 1.0
    end_learning_rate: float = 0.0
    power: float = 0.9


@dataclass
class TrainConfig:
    """Everything ``celebseg train`` needs; see the module doc for the file format."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    image_size: int = 512
    #: Global batch size (split across replicas).
    batch_size: int = 8
    epochs: int = 30
    #: None: the train split's image count // batch_size.
    steps_per_epoch: Optional[int] = None
    #: None: one full pass over the validation split.
    validation_steps: Optional[int] = None
    #: "auto" (mixed_float16 on GPU, mixed_bfloat16 on TPU, off on CPU), true or false.
    mixed_precision: Union[str, bool] = "auto"
    #: "auto" (Keras: XLA on accelerators when every layer supports it), true or false.
    jit_compile: Union[str, bool] = "auto"
    strategy: str = "auto"
    #: Devices for strategy "mirrored" (None: all GPUs, else all logical CPUs).
    devices: Optional[list] = None
    seed: int = 0
    run_dir: str = "runs/default"
    tensorboard: bool = True
    #: Minutes the whole run may take (probe, training, validation, test evaluation): the
    #: run measures its step time and chooses epochs and steps per epoch to fit (at most
    #: the configured ones). None: train as configured.
    time_budget_minutes: Optional[float] = None
    #: Backups of weights, optimizer state and position within the epoch, besides the one
    #: at every epoch end: every so many minutes of training and/or every so many steps
    #: (None turns one off). A killed run resumes there, repeating at most that much.
    backup_every_minutes: Optional[float] = 5.0
    backup_every_steps: Optional[int] = None
    #: The learning curve: score the model on ``curve_split`` after each of these numbers of
    #: training steps (each at an epoch's end: a multiple of the steps per epoch), written to
    #: RUN/curve/ (``callbacks.CurvePoints``). None: no curve.
    curve_steps: Optional[list] = None
    curve_split: str = "test"


# --------------------------------------------------------------------------- dict <-> config

def config_to_dict(config: TrainConfig) -> dict:
    """A plain nested dict (YAML/JSON ready).

    >>> config_to_dict(TrainConfig())["optimizer"]["schedule"]
    'poly'
    """
    return dataclasses.asdict(config)


def config_from_dict(data: dict, base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """Build a config from a (partial) nested dict on top of ``base`` (default: defaults).

    >>> config_from_dict({"batch_size": 2, "loss": {"name": "dice"}}).loss.name
    'dice'
    >>> config_from_dict({"batchsize": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    celebseg_utils.errors.CelebsegError: unknown key 'batchsize' in config; valid keys: data, ...
    """
    config = copy.deepcopy(base) if base is not None else TrainConfig()
    if not isinstance(data, dict):
        raise CelebsegError(f"{source} must be a mapping of keys to values, got {type(data).__name__}")
    _merge(config, data, prefix="", source=source)
    validate_config(config, source)
    return config


def _merge(obj, data: dict, prefix: str, source: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise CelebsegError(f"unknown key {dotted!r} in {source}; valid keys"
                                f"{' of ' + prefix[:-1] if prefix else ''}: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise CelebsegError(f"{dotted} in {source} must be a mapping with keys "
                                    f"{', '.join(f.name for f in dataclasses.fields(current))}")
            _merge(current, value, f"{dotted}.", source)
        else:
            setattr(obj, key, _coerce(value, hints[key], dotted, source))


def _coerce(value, hint, key: str, source: str):
    """``value`` as the declared type ``hint`` (YAML may give "3e-4" as a string)."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is Union:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, source)
            except CelebsegError as exc:
                errors.append(str(exc))
        raise CelebsegError(errors[0] if errors else f"{key} in {source} cannot be None")
    expect = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
              dict: "a mapping", list: "a list"}.get(origin or hint, str(hint))
    ok = None
    if hint is bool and isinstance(value, bool):
        ok = value
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        ok = value
    elif hint is int and isinstance(value, float) and value.is_integer():
        ok = int(value)
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = float(value)
    elif hint is float and isinstance(value, str):
        try:
            ok = float(value)
        except ValueError:
            pass
    elif hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        ok = str(value)
    elif (origin or hint) in (dict, list) and isinstance(value, origin or hint):
        ok = copy.deepcopy(value)
    if ok is None:
        raise CelebsegError(f"{key} in {source} must be {expect}, got {value!r}")
    return ok


def validate_config(config: TrainConfig, source: str = "config") -> None:
    """Check values that have a fixed set of choices or a range; raise CelebsegError."""
    def choice(key, value, options):
        if value not in options:
            shown = ", ".join("none" if o is None else str(o).lower() if isinstance(o, bool)
                              else str(o) for o in options)
            raise CelebsegError(f"{key}={value!r} in {source} is not valid; use one of: {shown}")

    def positive(key, value, allow_none=False):
        if (value is None and not allow_none) or (value is not None and value <= 0):
            raise CelebsegError(f"{key}={value!r} in {source} must be a positive number")

    from celebseg_utils.models.backbones import BACKBONES, LIBRARIES

    # checked here, not only when the model is built, so a typo stops before a run dir exists
    choice("model.backbone", config.model.backbone, tuple(BACKBONES))
    choice("model.library", config.model.library, LIBRARIES)
    choice("model.aspp", config.model.aspp, ("keras_cv", "standard", "separable"))
    positive("model.aspp_channels", config.model.aspp_channels)
    positive("model.decoder_channels", config.model.decoder_channels)
    choice("loss.name", config.loss.name, LOSSES)
    choice("loss.class_weights", config.loss.class_weights, ("auto", None) + CLASS_WEIGHT_SCHEMES)
    choice("data.sample_weights", config.data.sample_weights, (None,) + SAMPLE_WEIGHT_SCHEMES)
    choice("data.encoding", config.data.encoding, ("int", "onehot"))
    choice("optimizer.schedule", config.optimizer.schedule, SCHEDULES)
    choice("strategy", config.strategy, STRATEGIES)
    choice("mixed_precision", config.mixed_precision, ("auto", True, False))
    choice("jit_compile", config.jit_compile, ("auto", True, False))
    if (config.loss.name == "categorical_ce") != (config.data.encoding == "onehot"):
        raise CelebsegError(f"loss.name={config.loss.name} with data.encoding={config.data.encoding} "
                            f"in {source}: categorical_ce takes one-hot labels and only it does "
                            f"(--set loss.name=categorical_ce --set data.encoding=onehot)")
    for key in ("image_size", "batch_size", "epochs"):
        positive(key, getattr(config, key))
    positive("steps_per_epoch", config.steps_per_epoch, allow_none=True)
    positive("validation_steps", config.validation_steps, allow_none=True)
    positive("time_budget_minutes", config.time_budget_minutes, allow_none=True)
    positive("backup_every_minutes", config.backup_every_minutes, allow_none=True)
    positive("backup_every_steps", config.backup_every_steps, allow_none=True)
    choice("data.test_split", config.data.test_split, (None, "train", "val", "test"))
    choice("curve_split", config.curve_split, ("train", "val", "test"))
    if config.curve_steps is not None and not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in config.curve_steps):
        raise CelebsegError(f"curve_steps={config.curve_steps!r} in {source} must be a list of "
                            f"positive step counts, e.g. [250, 500, 1000]")
    positive("optimizer.learning_rate", config.optimizer.learning_rate)
    if config.optimizer.warmup_epochs < 0 or config.optimizer.weight_decay < 0:
        raise CelebsegError(f"optimizer.warmup_epochs and optimizer.weight_decay in {source} "
                            f"must be >= 0")
    if config.devices is not None and not all(isinstance(d, str) for d in config.devices):
        raise CelebsegError(f"devices in {source} must be a list of device names such as "
                            f"['/gpu:0', '/gpu:1'] or none")


# --------------------------------------------------------------------------- YAML / JSON

def config_to_yaml(config: TrainConfig) -> str:
    """The config as YAML text, keys in declaration order."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)


def config_from_yaml(text: str, source: str = "YAML config") -> TrainConfig:
    """Parse YAML text (a partial config is completed with defaults)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CelebsegError(f"{source} is not valid YAML: {exc}") from None
    return config_from_dict(data or {}, source=source)


def config_to_json(config: TrainConfig) -> str:
    """The config as indented JSON text."""
    return json.dumps(config_to_dict(config), indent=2) + "\n"


def config_from_json(text: str, source: str = "JSON config") -> TrainConfig:
    """Parse JSON text (a partial config is completed with defaults)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CelebsegError(f"{source} is not valid JSON: {exc}") from None
    return config_from_dict(data, source=source)


def save_config(config: TrainConfig, path) -> Path:
    """Write ``config`` atomically as JSON (``.json``) or YAML (any other suffix)."""
    from celebseg_utils.fileio import atomic_write_text

    path = Path(path)
    text = config_to_json(config) if path.suffix == ".json" else config_to_yaml(config)
    atomic_write_text(path, text)
    return path


def load_config(path) -> TrainConfig:
    """Read a YAML or JSON config file (by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise CelebsegError(f"config file {path} not found: pass an existing YAML/JSON file "
                            f"or use --preset NAME (one of: {', '.join(PRESETS)})")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return config_from_json(text, source=str(path))
    return config_from_yaml(text, source=str(path))


# --------------------------------------------------------------------------- overrides

def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """A copy of ``config`` with ``key=value`` overrides (dotted keys, YAML-typed values).

    Keys inside ``loss.kwargs`` are free-form: ``loss.kwargs.gamma=2``.

    >>> c = apply_overrides(TrainConfig(), ["optimizer.weight_decay=0", "devices=[/cpu:0, /cpu:1]",
    ...                                     "model.weights=none", "loss.kwargs.gamma=2.0"])
    >>> c.optimizer.weight_decay, c.devices, c.model.weights, c.loss.kwargs
    (0.0, ['/cpu:0', '/cpu:1'], None, {'gamma': 2.0})
    """
    data: dict = {}
    for item in overrides or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise CelebsegError(f"--set {item!r}: write KEY=VALUE, e.g. --set batch_size=4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise CelebsegError(f"--set {item!r}: {part} is set twice as value and mapping")
        node[parts[-1]] = value
    if isinstance(data.get("loss"), dict) and isinstance(data["loss"].get("kwargs"), dict):
        # Merge into (not replace) kwargs already set by the preset or the file.
        data["loss"]["kwargs"] = {**config.loss.kwargs, **data["loss"]["kwargs"]}
    return config_from_dict(data, base=config, source="--set")


# --------------------------------------------------------------------------- presets

_STUDY_BASE = {
    "model": {"backbone": "resnet50_v2", "weights": "imagenet"},
    "image_size": 512, "batch_size": 8, "epochs": 12,
    "optimizer": {"learning_rate": 5e-4},
}

#: name -> (description, partial config). Plain data, applied on top of the defaults.
PRESETS: dict[str, tuple[str, dict]] = {
    # Costs per preset (GFLOPs measured, T4 hours derived): docs/eta-budget.md, "Presets by cost".
    "colab-t4": ("ResNet50V2 DeepLabV3+ at 512 px on a 16 GB T4: batch 8, mixed float16, "
                 "12 epochs or 4 hours (a free Colab session), whichever ends first",
                 {**_STUDY_BASE, "time_budget_minutes": 240, "run_dir": "runs/colab-t4"}),
    # The notebooks' default: four loss runs in one free Colab session. 256 px keeps the
    # rare classes (scripts/measure_rare_visibility.py on the real faces: 98% of earrings
    # and 66% of necklaces keep >= 16 px, against 99.8% and 81% at 512); keras-hub's
    # ResNet50V2 costs 14.0 GFLOPs there against keras-cv's 32.9 (same weights' family).
    "colab-t4-quick": ("the loss study's quick path on a free Colab T4: keras-hub ResNet50V2 "
                       "(ImageNet) at 256 px, batch 16, mixed float16, 40 minutes a run",
                       {**_STUDY_BASE, "model": {"backbone": "resnet50_v2",
                                                 "library": "keras_hub", "weights": "imagenet"},
                        "image_size": 256, "batch_size": 16, "time_budget_minutes": 40,
                        "optimizer": {"learning_rate": 7e-4}, "run_dir": "runs/colab-t4-quick"}),
    "kaggle-2xt4": ("ResNet50V2 at 512 px on Kaggle's two T4s (MirroredStrategy, 8 images "
                    "each): batch 16, mixed float16, 12 epochs or 11 hours of a 12-hour session",
                    {**_STUDY_BASE, "strategy": "mirrored", "batch_size": 16,
                     "time_budget_minutes": 660, "optimizer": {"learning_rate": 7e-4},
                     "run_dir": "runs/kaggle-2xt4"}),
    "colab-a100": ("ResNet50V2 at 512 px on a 40 GB A100: batch 16, mixed float16, XLA",
                   {**_STUDY_BASE, "batch_size": 16, "epochs": 16, "jit_compile": True,
                    "optimizer": {"learning_rate": 7e-4}, "run_dir": "runs/colab-a100"}),
    "tpu": ("ResNet50V2 at 512 px on a TPU (v2-8 or larger): batch 64, bfloat16, shards on gs://",
            {**_STUDY_BASE, "batch_size": 64, "epochs": 20, "strategy": "tpu",
             "optimizer": {"learning_rate": 1.5e-3},
             "data": {"prepared": "gs://YOUR_BUCKET/celebseg/prepared"},
             "run_dir": "runs/tpu"}),
    # Measured on the synthetic faces (docs/demo.md): from scratch, CE + Dice at a high
    # learning rate with fast-moving BatchNorm statistics learns the small parts in minutes.
    "cpu-demo": ("MobileNetV3-Large at 128 px on CPU, random init, CE + Dice: minutes, for the demo",
                 {"model": {"backbone": "mobilenet_v3_large", "weights": None, "bn_momentum": 0.9},
                  "loss": {"name": "ce_dice"},
                  "image_size": 128, "batch_size": 8, "epochs": 30,
                  "optimizer": {"learning_rate": 4e-3, "warmup_epochs": 0.5},
                  "run_dir": "runs/cpu-demo"}),
    # Chosen by measurement on the 4,000 real faces (README, "The loss study on real faces"):
    # ASPP rates sized to the 4x4 stride-32 map of a 128 px input (17-34x cheaper than
    # DeepLab's 6/12/18 there: scripts/bench_aspp.py), the cpu-demo recipe otherwise.
    "cpu-real": ("MobileNetV3-Large at 128 px on CPU, random init, CE + Dice, on real faces: "
                 "the loss study's recipe",
                 {"model": {"backbone": "mobilenet_v3_large", "weights": None, "bn_momentum": 0.9,
                            "aspp_rates": [1, 2, 3]},
                  "loss": {"name": "ce_dice"},
                  "image_size": 128, "batch_size": 8, "epochs": 2,
                  "optimizer": {"learning_rate": 4e-3, "warmup_epochs": 0.1},
                  "tensorboard": False,
                  "run_dir": "runs/cpu-real"}),
}
for _loss in LOSSES:
    # the first recipe of each loss: ``study-categorical_ce`` reads one-hot labels (ce_onehot)
    _recipe = next(r for r in RECIPES.values() if r.loss == _loss)
    PRESETS[f"study-{_loss}"] = (
        f"the loss study on a T4 (colab-t4 settings), loss {_loss}",
        {**_STUDY_BASE, **_recipe.config_data(), "run_dir": f"runs/study/{_loss}"})


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description.

    >>> "colab-t4" in list_presets() and "study-dice" in list_presets()
    True
    """
    return {name: desc for name, (desc, _) in PRESETS.items()}


def preset_config(name: str) -> TrainConfig:
    """The :class:`TrainConfig` of a named preset.

    >>> preset_config("colab-t4").model.backbone
    'resnet50_v2'
    """
    if name not in PRESETS:
        raise CelebsegError(f"unknown preset {name!r}; use one of: {', '.join(PRESETS)}")
    return config_from_dict(copy.deepcopy(PRESETS[name][1]), source=f"preset {name}")


def resolve_config(config_file=None, preset: str | None = None, overrides=(),
                   run_dir: str | None = None) -> TrainConfig:
    """Defaults <- preset or config file <- ``--set`` overrides <- ``--run-dir``.

    >>> resolve_config(preset="colab-t4", run_dir="/tmp/r").run_dir
    '/tmp/r'
    """
    if config_file is not None and preset is not None:
        raise CelebsegError("give either --config FILE or --preset NAME, not both "
                            "(use --set to change a preset)")
    if config_file is not None:
        config = load_config(config_file)
    elif preset is not None:
        config = preset_config(preset)
    else:
        config = TrainConfig()
    config = apply_overrides(config, overrides)
    if run_dir is not None:
        config = dataclasses.replace(config, run_dir=str(run_dir))
    return config


#: Keys that say how a run is carried out, not what it trains: a resumed run may change
#: them (a resumed budget run keeps the plan it chose, RUN/plan.json).
HOW_KEYS = ("run_dir", "time_budget_minutes", "backup_every_minutes", "backup_every_steps",
            "curve_steps", "curve_split")


def flat_config(d: dict, prefix: str = "") -> dict:
    """A config dict (:func:`config_to_dict`) as dotted keys; a ``kwargs`` dict stays whole.

    >>> flat_config({"model": {"backbone": "x", "kwargs": {"a": 1}}, "seed": 0})
    {'model.backbone': 'x', 'model.kwargs': {'a': 1}, 'seed': 0}
    """
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: TrainConfig, b: TrainConfig, ignore=HOW_KEYS) -> list[str]:
    """Dotted keys whose values differ, as ``"key: a -> b"`` lines.

    >>> config_diff(TrainConfig(), apply_overrides(TrainConfig(), ["batch_size=2"]))
    ['batch_size: 8 -> 2']
    """
    fa, fb = flat_config(config_to_dict(a)), flat_config(config_to_dict(b))
    return [f"{k}: {fa.get(k)} -> {fb.get(k)}"
            for k in sorted(fa.keys() | fb.keys()) if k not in ignore and fa.get(k) != fb.get(k)]
