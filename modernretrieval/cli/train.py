"""Fine-tune a retriever (DPR or ColBERT) on BEIR qrels, a JSONL file or MS MARCO, with mined hard negatives.

    modernretrieval train --encoder dpr --model minilm --data-dir /work/shared/data --train-data scifact --output runs/scifact-dpr
    modernretrieval train --config configs/modernbert-base-dpr.toml --model answerdotai/ModernBERT-base --output runs/mb-dpr
    modernretrieval train ... --resume                # continue a killed run from its last checkpoint
    modernretrieval evaluate --models runs/scifact-dpr --data-dir /work/shared/data

(``python train.py ...`` in a checkout is the same as ``modernretrieval train ...``.)

CLI flags -> TrainConfig + MiningConfig (--mine-*) -> encoders.training.trainer.train -> OUTPUT/ (model, train_result.json).
A --config recipe (TOML or JSON, flat keys named like the flags with '_') sets defaults; flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tomllib
from pathlib import Path

from benchmarks.pipeline import run
from benchmarks.render.markdown import to_markdown
from benchmarks.spec import make_spec
from encoders.training.config import TrainConfig
from encoders.training.mining import MiningConfig
from encoders.training.trainer import train
from modernretrieval.evaluator import RetrievalEvaluator
from retrieval.beir import DataError
from retrieval.flags import _flag_type, add_flags, from_args, split_list

MINE_PREFIX = "mine_"


def _optional(tp):
    def convert(s: str):
        return None if s.lower() == "none" else tp(s)

    convert.__name__ = tp.__name__
    return convert


def add_mining_flags(parser: argparse.ArgumentParser) -> None:
    """``--mine-<field>`` for each MiningConfig field (dest ``mine_<field>``)."""
    for f in dataclasses.fields(MiningConfig):
        name = "--mine-" + f.name.replace("_", "-")
        tp = _flag_type(f.type)
        if f.default is None or "None" in str(f.type):  # optional: "none" switches the option off
            tp = _optional(tp)
        parser.add_argument(name, dest=MINE_PREFIX + f.name, type=tp, default=f.default, help=f.metadata["help"] + f" (default: {f.default})")


def mining_from_args(ns: argparse.Namespace) -> MiningConfig:
    return MiningConfig(**{f.name: getattr(ns, MINE_PREFIX + f.name) for f in dataclasses.fields(MiningConfig)})


def valid_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} | {MINE_PREFIX + f.name for f in dataclasses.fields(MiningConfig)}


def load_recipe(path: str) -> dict:
    """A recipe's flat ``key = value`` pairs (TOML or JSON). Tables (e.g. ``[paper]`` notes) are ignored."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"recipe {path} not found")
    if p.suffix == ".toml":
        data = tomllib.loads(p.read_text())
    else:
        data = json.loads(p.read_text())
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    unknown = sorted(set(values) - valid_keys())
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys: {', '.join(sorted(valid_keys()))}")
    return values


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="recipe file (configs/*.toml): defaults that flags override")
    add_flags(parser, TrainConfig)
    add_mining_flags(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


def parse(argv: list[str] | None = None, prog: str | None = None) -> tuple[TrainConfig, MiningConfig, argparse.Namespace]:
    parser = build_parser(prog)
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        parser.set_defaults(**load_recipe(pre.config))
    args = parser.parse_args(argv)
    return from_args(args, TrainConfig), mining_from_args(args), args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    try:
        cfg, mining, args = parse(argv, prog)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        evaluator = None
        if cfg.eval_every > 0:
            if not cfg.eval_data:
                raise ValueError("--eval-every needs --eval-data: the dataset whose slice is scored during training")
            evaluator = RetrievalEvaluator(split_list(cfg.eval_data)[0], data_dir=cfg.data_dir, encoder=cfg.encoder, output=Path(cfg.output) / "eval-during-training",
                                           cache_dir=cfg.cache_dir and str(Path(cfg.cache_dir) / "eval-during-training"))
        record = train(cfg, mining, evaluator)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = record["time"]
    print(f"trained {record['steps']} steps ({record['loss']}) in {t['train_wall_s']} s wall / {t['train_cpu_s']} s CPU; model in {cfg.output}")
    if "rank" in record:  # a non-zero torchrun rank: rank 0 saved the model and evaluates it
        return 0
    if cfg.eval_data:
        os.environ["WORLD_SIZE"] = "1"  # after torchrun training, rank 0 evaluates alone
        spec = make_spec(datasets=split_list(cfg.eval_data), data_dir=cfg.data_dir, models=(cfg.output,), encoder=cfg.encoder, output=str(Path(cfg.output) / "eval"))
        print(to_markdown(run(spec)))
    return 0
