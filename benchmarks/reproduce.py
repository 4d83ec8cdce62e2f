"""The reproduction matrix: published figures as data, checked through the one pipeline (in the spirit of pyserini's 2CR).

    entries = load_entries(DEFAULT_DIR)                         # configs/reproductions/*.toml, validated
    chosen = select(entries, "bm25-*")                          # names or globs, comma-separated; "" = all
    outcomes = {e.name: run_entry(e, ctx) for e in chosen}      # computed first (cached results: a rerun is instant)
    rows = matrix_rows(chosen, outcomes)                        # a pure function: ✔ / ✘ / skip / n/a
    write_matrix(ctx.out, rows)                                 # matrix.md, matrix.html, matrix.json (atomic)

The entries and their schema are :mod:`benchmarks.entries`; the matrix's rows and files, :mod:`benchmarks.render.matrix`; this module finds what an entry needs here, trains and runs it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache

from benchmarks import longdoc, models, pipeline
from benchmarks.entries import COSTS, DEFAULT_DIR, REF, REF_KEYS, ROOT, Cost, Entry, EntryError, load_entries, select
from benchmarks.render.matrix import Outcome, Row, matrix_rows, write_matrix
from benchmarks.spec import RunSpec, make_spec
from encoders.dtype import resolve_dtype
from encoders.loading import ALIASES, maths_versions
from encoders.training import trainer
from encoders.training.config import RESUME_FREE, TrainConfig, resolve_device
from encoders.training.data import parse_train_data
from encoders.training.mining import MiningConfig
from retrieval import sources
from retrieval.codeid import fingerprint
from retrieval.fusion import parse_fusion
from retrieval.io import cache_key
from retrieval.layouts import detect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where a reproduction run reads and writes; the command line's settings that never change a score."""

    out: Path  # matrix files here; result JSONs in out/results
    data_dir: str | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    entries: Mapping[str, Entry] = field(default_factory=dict)  # by name, for entry: references

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else sources.cache_dir()


def missing_data(name: str, split: str, data_dir: str | None) -> str | None:
    """Why dataset ``name`` cannot be read here: ``name`` itself when it is nowhere, else what is wrong (None: it can be read).

    Never downloads; looks where :func:`benchmarks.tasks.resolve_dataset` looks, in its order.
    """
    if longdoc.parse_name(name) is not None:
        return None  # generated in the cache on first use
    env_dir = os.environ.get(sources.DATA_DIR_ENV)
    for cand in (Path(name).expanduser(), data_dir and Path(data_dir) / name, env_dir and Path(env_dir) / name):
        if cand and cand.is_dir() and detect(cand, split) not in (None, "beir"):
            return None  # another published layout (MLDR, LongEmbed, CoIR), converted on first use
    try:
        folder = sources.resolve(name, data_dir, download=False)
    except FileNotFoundError:
        return name  # not in --data-dir, $RETRIEVAL_DATA_DIR nor the cache (sources.resolve)
    if not (folder / "qrels" / f"{split}.tsv").is_file():
        return f"{folder} has no qrels/{split}.tsv"
    return None


def _data_reason(names, split: str, data_dir: str | None) -> str | None:
    """One line for every dataset of ``names`` that is not here."""
    missing = [r for n in names if (r := missing_data(n, split, data_dir))]
    return f"data not here: {', '.join(missing)} (looked in --data-dir, ${sources.DATA_DIR_ENV} and the cache; nothing is downloaded)" if missing else None


def _local_path(name: str) -> Path | None:
    """A model given as a path (``./runs/x`` is relative to the repository root), else None (an alias, a name or a hub id)."""
    if name.startswith(("./", "../")):
        return ROOT / name
    if name.startswith(("/", "~")) or os.sep in name and name.count("/") > 1 or Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return None


def model_location(name: str) -> str:
    """The --models entry the pipeline is given: ``./runs/x`` made absolute (relative to the repository), others unchanged."""
    parts = parse_fusion(name)
    if parts is not None:
        return "+".join(model_location(n) + (f"*{w}" if w is not None else "") for n, w in parts)
    p = _local_path(name)
    return str(p) if p is not None and name.startswith(("./", "../")) else name


def missing_model(name: str) -> str | None:
    """Why the weights of --models entry ``name`` are not here (None: they are). Loads nothing."""
    parts = parse_fusion(name)
    if parts is not None:
        reasons = [r for n, _ in parts if (r := missing_model(n))]
        return "; ".join(reasons) or None
    if name in models.NAMED:
        return None
    if name in ALIASES:
        try:
            ALIASES[name][0]()
        except ImportError as e:
            return f"weights: alias {name!r} needs its package ({e})"
        return None
    p = _local_path(name)
    if p is not None:
        if not p.is_dir():
            return f"weights: model folder {p} not found"
        if not any(p.rglob("*.safetensors")) and not any(p.rglob("*.bin")):
            return f"weights: {p} holds no weight files (*.safetensors, *.bin)"
        return None
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except Exception as e:  # an id the hub client refuses (HFValidationError)
        return f"weights: {name!r} is neither an alias, a folder nor a hub id ({e})"
    if not isinstance(cached, str) and hf_constants.HF_HUB_OFFLINE:
        return f"weights: {name} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE)"
    return None


def train_folder(entry: Entry, ctx: Context) -> Path:
    """Where ``entry``'s trained model goes: keyed by everything that changes the weights (refs by their own folders).

    The settings (``--resume`` may change the others, which move files or logs), what the precision
    and the device resolve to here (``--dtype auto`` is bf16 on one machine and fp32 on another; a
    GPU rounds differently from a CPU), the training code (:func:`retrieval.codeid.fingerprint` of
    the trainer and all it imports) and the versions of the libraries that compute the weights.
    """
    cfg, mining = train_configs(entry, ctx, lambda ref: train_folder(ref, ctx))
    return ctx.cache_root / "reproductions" / "train" / f"{entry.name}-{cache_key(**weights_identity(cfg, mining))}"


def weights_identity(cfg: TrainConfig, mining: MiningConfig) -> dict:
    """Everything that changes the weights a training run produces (see :func:`train_folder`)."""
    device = resolve_device(cfg)
    precision = resolve_dtype(cfg.dtype, device, Path(cfg.cache_dir) if cfg.cache_dir else None)
    return {"config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_FREE}, "mining": dataclasses.asdict(mining),
            "dtype_resolved": precision.dtype, "device_type": device.split(":")[0], "code": fingerprint("encoders.training.trainer"), "versions": maths_versions()}


def train_configs(entry: Entry, ctx: Context, model_of: Callable[[Entry], Path]) -> tuple[TrainConfig, MiningConfig]:
    """TrainConfig + MiningConfig of ``entry``'s train step, ``entry:NAME`` values replaced by ``model_of(entry NAME)``."""
    values = {}
    for key, value in entry.train.settings.items():
        if isinstance(value, str) and value.startswith(REF):
            value = str(model_of(ctx.entries[value[len(REF):]]))
        values[key] = value
    mining = MiningConfig(**{k[len("mine_"):]: v for k, v in values.items() if k.startswith("mine_")})
    cfg = TrainConfig(**{k: v for k, v in values.items() if not k.startswith("mine_")}, data_dir=ctx.data_dir, cache_dir=ctx.cache_dir)
    return cfg, mining


def is_trained(folder: Path) -> bool:
    return (folder / "train_result.json").is_file()  # the trainer writes it last


def missing_train_inputs(entry: Entry, ctx: Context, stack: tuple[str, ...] = ()) -> str | None:
    """Why ``entry``'s model cannot be trained here (None: it can, or it already is)."""
    if entry.name in stack:
        raise EntryError(f"{entry.path}: train: reference cycle {' -> '.join((*stack, entry.name))}")
    if is_trained(train_folder(entry, ctx)):
        return None
    s = entry.train.settings
    reasons = []
    for key in sorted(REF_KEYS):
        value = s.get(key, "minilm" if key == "model" else None)
        if key == "teacher" and s.get("train_data") == "msmarco":
            continue  # the teacher's scores ship with the MS MARCO data; the name is only recorded
        if isinstance(value, str) and value.startswith(REF):
            reason = missing_train_inputs(ctx.entries[value[len(REF):]], ctx, (*stack, entry.name))
            reasons.append(reason and f"{value}: {reason}")
        elif value:
            reasons.append(missing_model(value))
    src = parse_train_data(s.get("train_data", "scifact"), ctx.data_dir)
    if src.kind == "beir":
        reasons.append(_data_reason([src.name], src.split, ctx.data_dir))
    elif src.kind == "msmarco" and hf_constants.HF_HUB_OFFLINE:
        reasons.append("data: MS MARCO training data comes from the Hugging Face hub, which is offline (HF_HUB_OFFLINE)")
    elif src.kind in ("jsonl", "saved") and not Path(src.name).exists():
        reasons.append(f"data: {src.name} not found")
    return "; ".join(r for r in reasons if r) or None


def missing_inputs(entry: Entry, ctx: Context) -> str | None:
    """Why ``entry`` cannot run here (None: everything it needs is here)."""
    reasons = [missing_train_inputs(entry, ctx) if entry.train else missing_model(entry.model),
               _data_reason(entry.run["datasets"], entry.run.get("split", "test"), ctx.data_dir)]
    reason = "; ".join(r for r in reasons if r)
    if reason and entry.needs:
        return f"{reason} — needs {entry.needs}"
    return reason or None


def ensure_trained(entry: Entry, ctx: Context) -> Path:
    """Train ``entry``'s model (its entry: references first) unless its cache folder is complete; return the folder."""
    cfg, mining = train_configs(entry, ctx, lambda ref: ensure_trained(ref, ctx))
    folder = train_folder(entry, ctx)
    if not is_trained(folder):
        log.info("%s: training into %s", entry.name, folder)
        trainer.train(dataclasses.replace(cfg, output=str(folder), resume=True), mining)  # resume: a killed run continues
    return folder


def entry_spec(entry: Entry, ctx: Context, model: str) -> RunSpec:
    """The run spec of ``entry`` with ``model``: the entry's settings, the command line's folders."""
    return make_spec(**{**entry.run, "models": (model,)}, data_dir=ctx.data_dir, cache_dir=ctx.cache_dir, no_cache=ctx.no_cache, output=str(ctx.out / "results"))


def unsupported_spec(model: str, spec: RunSpec) -> str | None:
    """Why this version's registry cannot build --models entry ``model`` (None: it can, or it is not a fusion).

    Only a fusion (``bm25+minilm``) is probed, by building it: a registry without fusion takes the
    whole entry for one model name and fails. Its inputs were checked before (:func:`missing_model`),
    so a failure here is the syntax, not missing weights. The retriever built here is dropped.
    """
    if parse_fusion(model) is None:
        return None
    try:
        models.build(model, spec)
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        return f"model spec {model!r} is not supported by this version's --models registry ({type(e).__name__}: {e})"
    return None


def run_entry(entry: Entry, ctx: Context) -> Outcome:
    """Run one entry (skipped with the reason when its inputs are missing); never raises for a failing run."""
    if entry.not_applicable:
        return Outcome(reason=f"not applicable: {entry.not_applicable}")
    missing = missing_inputs(entry, ctx)
    if missing:
        return Outcome(reason=missing)
    try:
        model = str(ensure_trained(entry, ctx)) if entry.train else model_location(entry.model)
        spec = entry_spec(entry, ctx, model)
        unsupported = unsupported_spec(model, spec)
        if unsupported:
            return Outcome(reason=unsupported)
        results = pipeline.run(spec)
    except Exception as e:  # one entry's failure is a row of the matrix, not the end of the run
        log.warning("%s: %s: %s", entry.name, type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return Outcome(reason=f"error: {type(e).__name__}: {e}", failed=True)
    lacking = [r.dataset for r in results if entry.metric not in r.metrics]
    if lacking:
        return Outcome(reason=f"error: no {entry.metric} in the results for {', '.join(lacking)}", failed=True, results=tuple(r.stem for r in results))
    value = sum(r.metrics[entry.metric] for r in results) / len(results)
    return Outcome(measured=value, results=tuple(r.stem for r in results))


def run_entries(entries: list[Entry], ctx: Context, max_cost: Cost = "expensive") -> dict[str, Outcome]:
    """An Outcome per entry, in order; not-applicable entries and entries above ``max_cost`` are not run."""
    out = {}
    for e in entries:
        if e.not_applicable:
            out[e.name] = Outcome(reason=f"not applicable: {e.not_applicable}")
            continue
        if COSTS.index(e.cost) > COSTS.index(max_cost):
            out[e.name] = Outcome(reason=f"cost {e.cost} ({e.cpu_time}) is above --max-cost {max_cost}")
            continue
        log.info("reproduce %s (%s, %s)", e.name, e.cost, e.cpu_time)
        out[e.name] = run_entry(e, ctx)
    return out


def reproduce(names: str, ctx: Context, *, folder: Path = DEFAULT_DIR, max_cost: Cost = "expensive") -> list[Row]:
    """Load, select, run, render: the rows of the matrix, also written under ``ctx.out``."""
    entries = load_entries(folder)
    chosen = select(entries, names)
    ctx = dataclasses.replace(ctx, entries={e.name: e for e in entries})
    rows = matrix_rows(chosen, run_entries(chosen, ctx, max_cost))
    write_matrix(ctx.out, rows)
    return rows
