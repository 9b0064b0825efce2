"""The ``celebseg train`` command: its arguments, and the run that calls :func:`train`.

Kept apart from :mod:`celebseg_utils.engine.train` so that ``celebseg train --help`` answers
without importing TensorFlow (a few seconds and a screen of start-up logs); the training
module is imported only when a run starts.

Example::

    celebseg train --preset cpu-demo --run-dir runs/mine --quiet
"""

from __future__ import annotations

from celebseg_utils.engine import config as cfgmod

def add_train_arguments(parser) -> None:
    """``celebseg train --config FILE | --preset NAME [--set key=value ...] [--run-dir DIR]``."""
    presets = cfgmod.list_presets()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="YAML or JSON config file")
    main = [k for k in presets if not k.startswith("study-")]
    source.add_argument("--preset", metavar="NAME", choices=sorted(presets),
                        help=f"named preset: {', '.join(main)}; study-LOSS: colab-t4 with one "
                             f"loss of the study (LOSS: {', '.join(cfgmod.LOSSES)})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, dotted keys (repeatable), e.g. "
                             "--set loss.name=dice --set optimizer.learning_rate=3e-4")
    parser.add_argument("--run-dir", metavar="DIR", help="where the run is written (run_dir)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no bar")


def run_train(args) -> int:
    """Resolve the config from the CLI arguments, then :func:`train`."""
    config = cfgmod.resolve_config(config_file=args.config, preset=args.preset,
                                   overrides=args.overrides, run_dir=args.run_dir)
    if args.print_config:
        print(cfgmod.config_to_yaml(config), end="")
        return 0
    from celebseg_utils.engine.train import MONITOR, train

    result = train(config, progress=not args.quiet, started=getattr(args, "started", None))
    best = result["best_metric"]
    print(f"done: {result['epochs_completed']} epochs, best {MONITOR} "
          f"{'n/a' if best is None else f'{best:.4f}'} (epoch {result['best_epoch']}), "
          f"models in {result['run_dir']}")
    return 0
