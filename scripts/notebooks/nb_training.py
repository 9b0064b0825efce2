"""What notebooks 04-06 share: their parameters, data cell (SMOKE sizes, ``ensure_data``)
and the configure / train / evaluate / show cells of each run. Each of the three story files adds its title and runs.
"""

from __future__ import annotations

from nb_cells import code, md

TRAIN_PARAMS = """
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # made ready below (prepared by notebook 02, kept on Drive)
RUN_ROOT = None                    # None: Google Drive when mounted (Colab), else ./runs
PRESET = "colab-t4-quick"          # 256 px, 40 min a run: the four loss runs of notebooks
                                   # 04-06 fit one free Colab session. Full quality, one loss
                                   # at 512 px: "colab-t4"; Kaggle's 2 x T4: "kaggle-2xt4"
TIME_BUDGET_MINUTES = "preset"     # minutes this run may take (it plans its epochs and steps
                                   # to fit, test evaluation included); "preset": the preset's
                                   # (40 for colab-t4-quick); None: the preset's epochs in full
# OVERRIDES: `--set`-style "KEY=VALUE" strings, e.g. ["epochs=20", "batch_size=16"]
OVERRIDES = []
SHOW_IMAGES = 3                    # test images in the prediction grid
"""

#: The data cell of a training notebook: SMOKE's sizes, then the data made ready (and, on
#: Colab or Kaggle outside SMOKE, a stop when the runtime has no GPU).
TRAIN_SMOKE = """
from celebseg_utils.interface import notebook, workspace

if SMOKE:  # the same flow at toy sizes, kept apart from real data and runs
    PREPARED_DIR = f"{workspace.SMOKE_DIR}/data/prepared"
    RUN_ROOT = RUN_ROOT or workspace.run_root(smoke=True)
    PRESET = workspace.SMOKE_PRESET  # MobileNetV3, random init; then 64 px, 1 epoch of 2 steps
    OVERRIDES = [*workspace.SMOKE_OVERRIDES, *OVERRIDES]
    TIME_BUDGET_MINUTES = None  # a few fixed steps
workspace.ensure_data(PREPARED_DIR, smoke=SMOKE, gpu=True)
"""

TRAIN_EXPLAIN = """
`RUN_ROOT = None` puts the run on Google Drive when it is mounted (Colab asks for
permission once). The run backs itself up every 5 minutes and at every epoch's end, so a
disconnected runtime loses minutes, not an epoch: re-run the notebook and training resumes
where the last backup left it, mid-epoch included.

Each run first times a few steps, then prints how long it will take ("12 epochs x 1511
steps: ETA 7 h 40 min at 11.2 img/s") and again after every epoch. With a time budget it
chooses its epochs and steps per epoch to end within it, and says what it chose.
"""


#: The run whose plan (epochs, steps, seed) every other loss run reuses: notebook 04's.
PLAN_RUN = "sparse_ce"


def _configure_text() -> str:
    """What the default preset trains, read from the preset itself when the notebooks are
    generated (a sentence cannot drift from the preset it describes)."""
    from celebseg_utils.engine.config import preset_config

    default = TRAIN_PARAMS.split('PRESET = "', 1)[1].split('"', 1)[0]
    cfg = preset_config(default)
    backbone = {"resnet50_v2": "ResNet50-V2", "mobilenet_v3_large": "MobileNetV3-Large"}.get(
        cfg.model.backbone, cfg.model.backbone)
    weights = "an ImageNet" if cfg.model.weights == "imagenet" else "a randomly initialised"
    return (f"The preset holds the defaults (`{default}`: DeepLabV3+ with {weights} {backbone} "
            f"backbone at {cfg.image_size} px, batch {cfg.batch_size}, AdamW with warm-up and "
            f"decay, flip and colour augmentation; the cell prints the resolved configuration)")


def training_cells(runs: list[str]) -> list[dict]:
    """Configure / train / evaluate / show cells for each run of ``runs``: a recipe name of
    ``celebseg_utils/models/recipes.py`` (also the run's folder), or ``"=NAME"`` for the
    notebook parameter ``NAME`` that holds one. Every run but :data:`PLAN_RUN` trains the
    plan (epochs, steps, seed) that :data:`PLAN_RUN` chose, so the runs differ only in the
    loss (``celebseg_utils.engine.control``)."""
    cells = []
    for name in runs:
        variable = name.startswith("=")
        name_code = name[1:] if variable else repr(name)
        title = f" · `{name}`" if len(runs) > 1 else ""
        plans_itself = name == PLAN_RUN
        if plans_itself:
            plan_code = ""
            plan_text = (f"This run plans the epochs and steps that fit its time budget; notebooks "
                         f"05 and 06 then train exactly its plan, with its seed, so that every loss "
                         f"starts from the same initial weights, sees the same batches and trains "
                         f"the same steps (notebook 07 checks it).")
        else:
            plan_code = (f"\n# notebook 04's plan: the same epochs, steps and seed for every loss "
                         f"(so, the same initial\n# weights and batches); notebook 07 checks it\n"
                         f'plan = control.shared_plan_overrides(run_dir.parent / "{PLAN_RUN}")')
            plan_text = (f"This run reuses the plan of notebook 04's `{PLAN_RUN}` run (same "
                         f"`RUN_ROOT`): its epochs, steps per epoch and seed, instead of planning "
                         f"its own within the time budget. Every loss then starts from the same "
                         f"initial weights, sees the same batches in the same order and trains the "
                         f"same steps: the runs notebook 07 compares differ only in the loss. "
                         f"Without 04's run it plans its own, and notebook 07 says the comparison "
                         f"is not controlled.")
        cells += [
            md(f"""
## Configure{title}

{_configure_text()}; each override changes one key exactly as
`celebseg train --preset NAME --set key=value` would, and the loss comes from the package's
table of loss recipes. {plan_text} The run folder keeps the configuration, checkpoints and
history: on Google Drive when it is mounted, else under `runs/`.
"""),
            code(f"""
from celebseg_utils.engine import config, control
from celebseg_utils.interface import workspace
from celebseg_utils.models.recipes import RECIPES

run_dir = workspace.mount_drive_run_dir({name_code}, root=RUN_ROOT)
budget = [] if TIME_BUDGET_MINUTES == "preset" else [f"time_budget_minutes={{TIME_BUDGET_MINUTES}}"]{plan_code}
cfg = config.resolve_config(preset=PRESET, run_dir=run_dir, overrides=[
    f"data.prepared={{PREPARED_DIR}}", *RECIPES[{name_code}].overrides(), *budget,{"" if plans_itself else " *plan,"}
    *OVERRIDES])
print(config.config_to_yaml(cfg))
"""),
            md(f"""
## Train{title}

Keras prints one progress bar per epoch, and the run its ETA once the step time is
measured. The model with the best validation mIoU is kept as `best.keras`; `history.json`
grows by one entry per epoch. Re-running this cell resumes an interrupted run, and returns
at once for a finished one. The test evaluation below is part of the time budget.
"""),
            code("""
from celebseg_utils.interface import notebook_figures as figures
from celebseg_utils.engine import train

result = train.train(cfg, test_images=workspace.split_size(PREPARED_DIR, "test"))
faces = "synthetic faces" if SMOKE else "real faces"
figures.plot_history(result["history"], loss=run_dir.name,
                     title=f"{run_dir.name}: {faces}, {cfg.image_size} px, {result['epochs']} epochs "
                           f"x {result['steps_per_epoch']} steps, seed {cfg.seed}");
"""),
            md(f"""
## Evaluate{title}

The scores come from one confusion matrix accumulated over the whole test split: IoU and
F1 per class, mIoU over the 19 classes, mean F1 over the 18 facial classes (the usual
face-parsing number), and pixel accuracy.
"""),
            code("""
from celebseg_utils.engine.results import results_table
from celebseg_utils.interface import notebook

# A finished run reopened on a fresh runtime reads its scores back from Drive.
results = workspace.run_test_scores(run_dir, result["best_model"], PREPARED_DIR)
notebook.Markdown(results_table(results))
"""),
            md(f"""
## Predictions{title}

Photo, ground truth and prediction for a few test faces. The legend beside each row gives
each class's share of the pixels in the truth and in the prediction: a class the model
misses reads "2.1% / 0%", one it invents "0% / 1.5%". Then the viewer, on the same model:
step through the test split and compare the two maps with the per-image IoU.
"""),
            code("""
figures.plot_predictions(result["best_model"], PREPARED_DIR, count=SHOW_IMAGES, split="test",
                         title=f"{run_dir.name}, best validation checkpoint: {faces}, "
                               f"{cfg.image_size} px, {result['epochs'] * result['steps_per_epoch']:,} "
                               f"planned steps, seed {cfg.seed}");
"""),
            code("""
from celebseg_utils import MaskViewer

MaskViewer(PREPARED_DIR, split="test", model=result["best_model"])
"""),
        ]
    return cells
