"""One fit of 05's transfer model over several processes (DDP), started by torchrun or srun.

    python run_all.py --only 02                                   # the split it trains on
    torchrun --nproc-per-node 2 examples/ddp_fit.py --backbone resnet18 --image-size 64 --max-epochs 2

One process per GPU (nccl), or gloo processes on a CPU. On a Slurm cluster, ``srun --ntasks-per-node 4 python
examples/ddp_fit.py ...`` with ``MASTER_ADDR`` set to the first node (docs/running.md). It walks 05's path (split,
cache, batches, model, fit, evaluate, record) with a few of its parameters; each process trains on its share of
every global batch (``--batch-size`` is the global batch), and process 0 alone prints and records the run
(``results/transfer/<run>/``, as 05 records it, so 08 and 10 read it). Its training checkpoints are resumed when
the same command is run again (after a preemption, say).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone without installing

import torch.distributed as dist  # noqa: E402

from skinlib import distributed, inputs, paths, registry  # noqa: E402
from skinlib.data.batches import class_weights  # noqa: E402
from skinlib.data.cache import channel_stats  # noqa: E402
from skinlib.data.datasets import locate  # noqa: E402
from skinlib.data.transforms import Preprocess, augmentation  # noqa: E402
from skinlib.evaluation import evaluate_splits  # noqa: E402
from skinlib.models import ModelSpec, create_backbone, normalization_of  # noqa: E402
from skinlib.notebook import seed_everything  # noqa: E402
from skinlib.train import FitConfig, fit, predict_splits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="the dataset's folder (default: as 05, else synthetic data)")
    parser.add_argument("--split-name", default=inputs.DEFAULT_SPLIT, help="a split saved by 02")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--pretrained", action="store_true", help="load the backbone's pretrained weights")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch, shared out over the processes")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--augment", default="study_e")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    args = parser.parse_args(argv)

    distributed.init_from_environment()                      # torchrun's or srun's variables; alone: no group
    main_process = distributed.is_main()
    if not main_process:
        sys.stdout = open(os.devnull, "w")                   # process 0 speaks for all
    seed_everything(args.seed)
    data_dir, layout = locate("ham10000", args.data_dir, None)
    if not main_process:
        dist.barrier()                                       # process 0 builds the image cache; the others open it
    data = inputs.prepare(data_dir, layout, args.split_name, image_size=args.image_size,
                          batch_size=args.batch_size, seed=args.seed, device=args.device)
    if main_process and dist.is_initialized():
        dist.barrier()

    spec_kwargs = dict(name=args.backbone, num_classes=len(data.classes), image_size=args.image_size)
    model = create_backbone(**spec_kwargs, pretrained=args.pretrained)
    own = normalization_of(model) if args.pretrained else None
    mean, std = own or channel_stats(data.cache, data.parts["train"]["image_id"])
    train_pre, eval_pre = Preprocess(mean, std, augmentation(args.augment)), Preprocess(mean, std)
    name = f"{inputs.transfer_run_name(args.backbone, pretrained=args.pretrained, augment=args.augment)}-ddp"
    config = FitConfig(max_epochs=args.max_epochs, lr=args.lr, optimizer="adamw", scheduler="cosine",
                       class_weights=class_weights(data.parts["train"]["label"], len(data.classes)).tolist(),
                       device=args.device, seed=args.seed)
    result = fit(model, data.batches["train"], data.batches["val"], train_pre, eval_pre, config,
                 checkpoint_dir=paths.workspace() / "checkpoints" / "transfer" / name)
    proba = predict_splits(model, data.batches, eval_pre, result)      # every process takes part; all get it whole
    if main_process:
        evaluation = evaluate_splits(data.parts, proba, seed=args.seed, classes=data.classes)
        print(evaluation.summary().round(3).to_string())
        params = {**vars(args), "run_name": name, "processes": distributed.world()[1]}
        registry.record("transfer", name, params, data.parts, evaluation, history=result.history,
                        classes=data.classes, model=model,
                        spec=ModelSpec("backbone", spec_kwargs, mean, std, args.image_size, False,
                                       classes=data.classes))
        print(f"recorded: {paths.workspace() / 'results' / 'transfer' / name}")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
