"""The reproduction matrix: published figures as data, checked through the one pipeline (in the spirit of pyserini's 2CR).

    entries = load_entries(DEFAULT_DIR)                         # configs/reproductions/*.toml, validated
    chosen = select(entries, "bm25-*")                          # names or globs, comma-separated; "" = all
    outcomes = {e.name: run_entry(e, ctx) for e in chosen}      # computed first (cached results: a rerun is instant)
    rows = matrix_rows(chosen, outcomes)                        # a pure function: ✔ / ✘ / skip / n/a
    write_matrix(ctx.out, rows)                                 # matrix.md, matrix.html, matrix.json (atomic)

One TOML file per figure. Top-level keys (``*`` = required)::

    name*          unique id, [a-z0-9._-]            description*   what the figure is
    expected*      the published value (a fraction)  tolerance*     allowed |measured - expected|, in (0, 1)
    source*        where the figure comes from (file, URL, commit)
    source_kind*   published (a figure someone else published) | own (an earlier run of this project:
                   it checks that we still get what we got, not that we agree with anyone)
    cost*          cheap | moderate | expensive      cpu_time*      rough CPU time, e.g. "~10 s (2 cores)"
    metric         default "ndcg@10"                 needs          what a user must supply, e.g. "weights: ..."
    not_applicable a reason: listed, never run, never ✔ (a figure for other data than ours)
    [[alternative]] what the figure is told apart from (required with [train]: what training is compared
                   with). Each: ``entry = "NAME"`` (that entry's expected value; same datasets, split and
                   metric) or ``value = 0.3159``, and ``description``. The entry is refused when its
                   tolerance would accept an alternative's number (|alternative - expected| <= tolerance):
                   a ✔ must tell the claim from what it claims to differ from.
    [run]*         the evaluate run: run-spec fields by their flat names (benchmarks.spec.make_spec):
                   models (exactly one --models entry; absent when [train] gives the model), datasets
                   (several: the measured value is their mean), task, split, encoder, top_k, ...
    [train]        train.py settings by their flat names (``config`` = a recipe file, read first,
                   overridden by the keys beside it; ``mine_*`` for mining). The trained model is the
                   run's model. ``"entry:NAME"`` as a model/teacher/mine_model is another entry's trained model.

Validation names the file and the key (``configs/reproductions/x.toml: run.encodr: unknown key; did you
mean 'encoder'?``). Settings that never change a score (output, cache and data folders) come from the
command line, never from an entry. A trained model goes into
``CACHE/reproductions/train/<name>-<hash of every setting that changes the weights>`` and is reused once
``train_result.json`` (written last by the trainer) is there.

An entry runs only when its inputs are here: the data (no download), the model's weights (an alias's
package, a folder, or a hub id in the local Hugging Face cache when offline), or a trained model's
inputs. Otherwise it is skipped with the reason. A model spec this version's registry cannot build
(e.g. fusion, ``bm25+minilm``, before it exists) is skipped with the registry's error, not a crash.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import html
import json
import logging
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache

from benchmarks import longdoc, models, pipeline
from benchmarks.spec import SECTIONS, RunSpec, make_spec
from encoders.dtype import resolve_dtype
from encoders.loading import ALIASES, maths_versions
from encoders.training import trainer
from encoders.training.config import RESUME_FREE, TrainConfig, resolve_device
from encoders.training.data import parse_train_data
from encoders.training.mining import MiningConfig
from retrieval import sources
from retrieval.flags import ChoiceError, choice, split_list
from retrieval.fusion import parse_fusion
from retrieval.codeid import fingerprint
from retrieval.io import atomic_write_text, cache_key
from retrieval.layouts import detect

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "configs" / "reproductions"
COSTS = ("cheap", "moderate", "expensive")
Cost = Literal["cheap", "moderate", "expensive"]
Status = Literal["pass", "fail", "skip", "n/a"]
MARK = {"pass": "✔", "fail": "✘", "skip": "skip", "n/a": "n/a"}
REF = "entry:"  # a train setting "entry:NAME" is entry NAME's trained model

TOP_KEYS: dict[str, type] = {"name": str, "description": str, "expected": float, "tolerance": float, "metric": str, "source": str, "source_kind": str,
                             "cost": str, "cpu_time": str, "needs": str, "not_applicable": str, "run": dict, "train": dict, "alternative": list}
REQUIRED = ("name", "description", "expected", "tolerance", "source", "source_kind", "cost", "cpu_time", "run")
SOURCE_KINDS = ("published", "own")
ALTERNATIVE_KEYS = {"entry": str, "value": float, "description": str, "source": str}
CLI_ONLY = {"output", "cache_dir", "no_cache", "save_run", "leaderboard", "layout", "data_dir"}  # never change a score: the command line's
TRAIN_RUNNER = {"output", "resume", "eval_data", "data_dir", "cache_dir"}  # set by the runner
REF_KEYS = {"model", "teacher", "mine_model"}  # train settings that may be "entry:NAME"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
METRIC = re.compile(r"[a-z_]+@\d+")


class EntryError(ValueError):
    """A reproduction entry that does not validate; the message starts with the file and the key."""


# ---------------------------------------------------------------- entries (data, validated once)


@dataclass(frozen=True)
class TrainStep:
    settings: dict  # flat train.py settings: the recipe's, overridden by the entry's
    recipe: str | None = None  # the recipe file, as written in the entry


@dataclass(frozen=True)
class Alternative:
    """A number the entry's figure must be told apart from: another entry's expected value, or a value given."""

    description: str
    entry: str | None = None  # another entry's name: its expected value (resolved by load_entries)
    value: float | None = None
    source: str = ""

    def label(self) -> str:
        return f"{self.entry or self.description} {self.value:.4f}" if self.value is not None else (self.entry or self.description)


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    description: str
    expected: float
    tolerance: float
    source: str
    cost: Cost
    cpu_time: str
    run: dict  # validated flat run-spec fields (tuples for list fields)
    source_kind: str = "published"
    metric: str = "ndcg@10"
    needs: str | None = None
    not_applicable: str | None = None
    train: TrainStep | None = None
    alternatives: tuple[Alternative, ...] = ()

    @property
    def model(self) -> str | None:
        return self.run["models"][0] if "models" in self.run else None


def _hint(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(sorted(valid))})"


def _accepts(value, tp) -> bool:
    """Whether ``value`` (from TOML) fits a config field's annotation; Literal values are checked by the caller."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in typing.get_args(tp) if a is not type(None))
    if origin is Literal:
        return isinstance(value, str)
    if origin is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def _literal(tp):
    """The Literal inside ``tp`` (``Literal[...] | None`` too), else None."""
    if typing.get_origin(tp) is Literal:
        return tp
    return next((a for a in typing.get_args(tp) if typing.get_origin(a) is Literal), None)


def _field_value(path: Path, key: str, value, tp):
    """``value`` checked (and lists made tuples, ints made floats) against annotation ``tp``; an EntryError names ``path: key``."""
    if isinstance(value, list):
        value = tuple(value)
    elif isinstance(value, str) and typing.get_origin(tp) is tuple:
        value = split_list(value)
    lit = _literal(tp)
    if lit is not None and isinstance(value, str):
        try:
            choice(typing.get_args(lit), key)(value)
        except ChoiceError as e:
            raise EntryError(f"{path}: {e}") from None
    if not _accepts(value, tp):
        raise EntryError(f"{path}: {key}: expected {getattr(tp, '__name__', str(tp))}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and float in (tp, *typing.get_args(tp)):
        value = float(value)  # lr = 1 and lr = 1.0 are one setting (and one cache key)
    return value


def _run_fields() -> dict[str, object]:
    """Every run-spec field (all sections, including ones added later) -> its annotation."""
    out = {}
    for cls in SECTIONS.values():
        hints = typing.get_type_hints(cls)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(cls)})
    return out


def _train_fields() -> dict[str, object]:
    """Every train.py setting (TrainConfig fields, ``mine_`` + MiningConfig fields) -> its annotation."""
    t, m = typing.get_type_hints(TrainConfig), typing.get_type_hints(MiningConfig)
    return {f.name: t[f.name] for f in dataclasses.fields(TrainConfig)} | {"mine_" + f.name: m[f.name] for f in dataclasses.fields(MiningConfig)}


def parse_run(path: Path, table: dict, *, trained: bool) -> dict:
    """The ``[run]`` table -> validated flat run-spec fields."""
    fields = _run_fields()
    out = {}
    for key, value in table.items():
        where = f"{path}: run.{key}"
        if key in CLI_ONLY:
            raise EntryError(f"{where}: set on the command line, not in an entry (it never changes a score)")
        if key not in fields:
            raise EntryError(f"{where}: unknown key{_hint(key, set(fields) - CLI_ONLY)}")
        out[key] = _field_value(path, f"run.{key}", value, fields[key])
        try:
            make_spec(**{key: out[key]})
        except (ValueError, TypeError) as e:
            raise EntryError(f"{where}: {e}") from None
    if trained and "models" in out:
        raise EntryError(f"{path}: run.models: the [train] step's output is the model; drop run.models")
    if not trained and len(out.get("models", ())) != 1:
        raise EntryError(f"{path}: run.models: exactly one --models entry per figure, got {list(out.get('models', ()))}")
    if not out.get("datasets"):
        raise EntryError(f"{path}: run.datasets: missing (one dataset, or several whose mean is the figure)")
    try:
        make_spec(**out)  # cross-field checks (e.g. a ColBERT --index)
    except (ValueError, TypeError) as e:
        raise EntryError(f"{path}: run: {e}") from None
    return out


def _train_settings(where: Path, table: dict, prefix: str) -> dict:
    fields = _train_fields()
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            continue  # recipes keep notes in tables ([paper]); train.py ignores them too
        if key in TRAIN_RUNNER:
            raise EntryError(f"{where}: {prefix}{key}: set by the runner (the trained model goes into the cache)")
        if key not in fields:
            raise EntryError(f"{where}: {prefix}{key}: unknown key{_hint(key, set(fields) - TRAIN_RUNNER)}")
        out[key] = _field_value(where, prefix + key, value, fields[key])
    return out


def parse_train(path: Path, table: dict) -> TrainStep:
    """The ``[train]`` table -> its settings: the recipe's (``config``, relative to the repository), then the entry's."""
    table = dict(table)
    recipe = table.pop("config", None)
    settings: dict = {}
    if recipe is not None:
        file = Path(recipe) if Path(recipe).is_absolute() else ROOT / recipe
        if not file.is_file():
            raise EntryError(f"{path}: train.config: recipe {recipe!r} not found ({file})")
        try:
            settings.update(_train_settings(file, tomllib.loads(file.read_text()), ""))
        except tomllib.TOMLDecodeError as e:
            raise EntryError(f"{file}: {e}") from None
    settings.update(_train_settings(path, table, "train."))
    return TrainStep(settings, recipe)


def parse_entry(path: Path) -> Entry:
    """One TOML file -> an Entry; any problem is an EntryError naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise EntryError(f"{path}: {e}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise EntryError(f"{path}: {key}: unknown key{_hint(key, TOP_KEYS)}")
    for key in REQUIRED:
        if key not in data:
            raise EntryError(f"{path}: {key}: missing (required: {', '.join(REQUIRED)})")
    for key, value in data.items():
        tp = TOP_KEYS[key]
        if tp is list:
            if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
                raise EntryError(f"{path}: {key}: expected an array of tables ([[{key}]]), got {value!r}")
            continue
        if not _accepts(value, tp) or (tp is dict) != isinstance(value, dict):
            raise EntryError(f"{path}: {key}: expected {'a table' if tp is dict else tp.__name__}, got {value!r}")
    if not NAME.fullmatch(data["name"]):
        raise EntryError(f"{path}: name: {data['name']!r} is not [a-z0-9][a-z0-9._-]*")
    expected, tol = float(data["expected"]), float(data["tolerance"])
    if not (math.isfinite(expected) and 0.0 <= expected <= 1.0):
        raise EntryError(f"{path}: expected: {data['expected']!r} is not a metric value in [0, 1]")
    if not (math.isfinite(tol) and 0.0 < tol < 1.0):
        raise EntryError(f"{path}: tolerance: {data['tolerance']!r} must be in (0, 1)")
    if data["cost"] not in COSTS:
        raise EntryError(f"{path}: cost: {data['cost']!r} is not one of {', '.join(COSTS)}")
    if data["source_kind"] not in SOURCE_KINDS:
        raise EntryError(f"{path}: source_kind: {data['source_kind']!r} is not one of {', '.join(SOURCE_KINDS)} (a figure someone published, or an earlier run of ours)")
    metric = data.get("metric", "ndcg@10")
    if not METRIC.fullmatch(metric):
        raise EntryError(f"{path}: metric: {metric!r} is not a metric name such as 'ndcg@10'")
    train = parse_train(path, data["train"]) if "train" in data else None
    run = parse_run(path, data["run"], trained=train is not None)
    if train is not None and train.settings.get("encoder", "dpr") != run.get("encoder", "dpr"):
        raise EntryError(f"{path}: run.encoder: {run.get('encoder', 'dpr')!r} differs from the trained encoder {train.settings.get('encoder', 'dpr')!r}")
    alternatives = tuple(parse_alternative(path, i, t) for i, t in enumerate(data.get("alternative", [])))
    if train is not None and not alternatives and not data.get("not_applicable"):
        raise EntryError(f"{path}: alternative: an entry with a [train] step names what training is compared with "
                         "([[alternative]] with entry = the starting model's entry, or value = its figure, and description)")
    entry = Entry(name=data["name"], path=path, description=data["description"], expected=expected, tolerance=tol, source=data["source"],
                  source_kind=data["source_kind"], cost=data["cost"], cpu_time=data["cpu_time"], run=run, metric=metric, needs=data.get("needs"),
                  not_applicable=data.get("not_applicable"), train=train, alternatives=alternatives)
    for alt in alternatives:
        if alt.value is not None:
            check_distinguishes(entry, alt)
    return entry


def parse_alternative(path: Path, i: int, table: dict) -> Alternative:
    """One ``[[alternative]]`` table: ``entry`` or ``value`` (exactly one), ``description``, optional ``source``."""
    where = f"{path}: alternative[{i}]"
    for key, value in table.items():
        if key not in ALTERNATIVE_KEYS:
            raise EntryError(f"{where}.{key}: unknown key{_hint(key, ALTERNATIVE_KEYS)}")
        if not _accepts(value, ALTERNATIVE_KEYS[key]):
            raise EntryError(f"{where}.{key}: expected {ALTERNATIVE_KEYS[key].__name__}, got {value!r}")
    if ("entry" in table) == ("value" in table):
        raise EntryError(f"{where}: give exactly one of entry (another entry's name) or value (a figure), got {sorted(table)}")
    if not table.get("description"):
        raise EntryError(f"{where}.description: missing (what the alternative is, e.g. 'zero-shot all-MiniLM-L6-v2')")
    value = table.get("value")
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise EntryError(f"{where}.value: {value!r} is not a metric value in [0, 1]")
    return Alternative(table["description"], table.get("entry"), None if value is None else float(value), table.get("source", ""))


def check_distinguishes(entry: Entry, alt: Alternative) -> None:
    """EntryError unless ``entry``'s tolerance rejects ``alt``'s number: a ✔ must tell the two apart."""
    gap = abs(alt.value - entry.expected)
    if gap <= entry.tolerance + 1e-12:
        raise EntryError(f"{entry.path}: tolerance: ±{entry.tolerance:g} around {entry.expected:.4f} would accept the alternative "
                         f"{alt.label()} ({alt.description}; |difference| {gap:.4f}): lower the tolerance below {gap:.4f}, or the entry cannot tell them apart")


def load_entries(folder: Path = DEFAULT_DIR) -> list[Entry]:
    """Every ``*.toml`` in ``folder``, sorted by name; names unique, ``entry:`` references to entries with a [train] step."""
    entries = [parse_entry(p) for p in sorted(Path(folder).glob("*.toml"))]
    seen: dict[str, Path] = {}
    for e in entries:
        if e.name in seen:
            raise EntryError(f"{e.path}: name: {e.name!r} is also the name of {seen[e.name]}")
        seen[e.name] = e.path
    by_name = {e.name: e for e in entries}
    entries = [resolve_alternatives(e, by_name) for e in entries]
    by_name = {e.name: e for e in entries}
    for e in entries:
        for key, value in (e.train.settings.items() if e.train else ()):
            if isinstance(value, str) and value.startswith(REF):
                ref = by_name.get(value[len(REF):])
                if key not in REF_KEYS:
                    raise EntryError(f"{e.path}: train.{key}: only {', '.join(sorted(REF_KEYS))} may name another entry")
                if ref is None or ref.train is None:
                    raise EntryError(f"{e.path}: train.{key}: {value!r} is not an entry with a [train] step{_hint(value[len(REF):], [n for n, x in by_name.items() if x.train])}")
    return sorted(entries, key=lambda e: e.name)


def resolve_alternatives(e: Entry, by_name: Mapping[str, Entry]) -> Entry:
    """``e`` with each ``entry = NAME`` alternative given that entry's expected value, checked to measure the same thing
    (datasets, split, metric) and to be rejected by ``e``'s tolerance."""
    out = []
    for i, alt in enumerate(e.alternatives):
        if alt.entry is not None:
            ref = by_name.get(alt.entry)
            if ref is None:
                raise EntryError(f"{e.path}: alternative[{i}].entry: no entry named {alt.entry!r}{_hint(alt.entry, list(by_name))}")
            same = [(k, e.run.get(k, d), ref.run.get(k, d)) for k, d in (("datasets", ()), ("split", "test"))] + [("metric", e.metric, ref.metric)]
            differ = [f"{k} {a!r} vs {b!r}" for k, a, b in same if a != b]
            if differ:
                raise EntryError(f"{e.path}: alternative[{i}].entry: {alt.entry!r} measures something else ({'; '.join(differ)})")
            alt = dataclasses.replace(alt, value=ref.expected, source=alt.source or f"entry {ref.name}: {ref.source}")
            check_distinguishes(e, alt)
        out.append(alt)
    return dataclasses.replace(e, alternatives=tuple(out))


def select(entries: list[Entry], names: str = "") -> list[Entry]:
    """Entries matching comma-separated names or globs (``""`` or ``"*"``: all); a pattern matching nothing is an error."""
    patterns = split_list(names) or ("*",)
    chosen = []
    for pat in patterns:
        hits = [e for e in entries if fnmatch.fnmatchcase(e.name, pat)]
        if not hits:
            raise ValueError(f"--reproduce: no entry matches {pat!r}{_hint(pat, [e.name for e in entries])}")
        chosen += [e for e in hits if e not in chosen]
    return chosen


# ---------------------------------------------------------------- inputs: what is here, what is missing


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


# ---------------------------------------------------------------- running (through the one pipeline)


@dataclass(frozen=True)
class Outcome:
    """What running one entry gave: a measured value, or why there is none."""

    measured: float | None = None
    reason: str = ""  # why skipped or failed; "" when measured
    failed: bool = False  # True: the entry should have run and did not (an error); False with no value: skipped
    results: tuple[str, ...] = ()  # result file stems (in out/results) the value comes from


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


# ---------------------------------------------------------------- the matrix (rendered from entries + outcomes)


@dataclass(frozen=True)
class Row:
    name: str
    metric: str
    expected: float
    tolerance: float
    measured: float | None
    delta: float | None
    status: Status
    reason: str
    source: str
    cost: str
    results: tuple[str, ...] = ()
    source_kind: str = "published"
    alternatives: tuple[str, ...] = ()  # "name value (|Δ| gap)" of each alternative the tolerance rejects


def judge(expected: float, tolerance: float, measured: float) -> Status:
    """``"pass"`` when ``|measured - expected| <= tolerance`` (to 1e-12, so a figure at the edge passes), else ``"fail"``.

    >>> judge(0.6874, 0.002, 0.6863), judge(0.6451, 0.005, 0.6351)
    ('pass', 'fail')
    """
    return "pass" if abs(measured - expected) <= tolerance + 1e-12 else "fail"


def matrix_rows(entries: list[Entry], outcomes: Mapping[str, Outcome]) -> list[Row]:
    """One row per entry: ✔ inside the tolerance, ✘ outside or on error, skip (missing input, cost) or n/a, with the reason."""
    rows = []
    for e in entries:
        o = outcomes[e.name]
        if o.measured is not None:
            status: Status = judge(e.expected, e.tolerance, o.measured)
        else:
            status = "fail" if o.failed else "n/a" if e.not_applicable else "skip"
        delta = None if o.measured is None else o.measured - e.expected
        reason = o.reason or (f"outside ±{e.tolerance:g}" if status == "fail" else "")
        alts = tuple(f"{a.label()} (|Δ| {abs(a.value - e.expected):.4f})" for a in e.alternatives)
        rows.append(Row(e.name, e.metric, e.expected, e.tolerance, o.measured, delta, status, reason, e.source, e.cost, o.results, e.source_kind, alts))
    return rows


def _num(v: float | None, signed: bool = False) -> str:
    return "—" if v is None else f"{v:+.4f}" if signed else f"{v:.4f}"


def summary(rows: list[Row]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in MARK}
    return ", ".join(f"{n} {MARK[s]}" for s, n in counts.items() if n) or "no entries"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


SOURCE_NOTE = ("source: published = a figure someone else published (agreement with it is evidence); own = an earlier run of this "
               "project (a ✔ says we still get what we got). alternative: the number the figure is told apart from; every tolerance is below its gap.")


def to_markdown(rows: list[Row]) -> str:
    header = ["name", "metric", "expected ± tol", "measured", "delta", "status", "source", "alternative (|Δ| to expected)", "cost", "reason / reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        why = f"{r.reason} — source: {r.source}" if r.reason else r.source
        cells = [r.name, r.metric, f"{r.expected:.4f} ± {r.tolerance:.4f}", _num(r.measured), _num(r.delta, True), MARK[r.status], r.source_kind,
                 "; ".join(r.alternatives) or "—", r.cost, why]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + f"\n\n{summary(rows)}\n\n{SOURCE_NOTE}\n"


def to_html(rows: list[Row]) -> str:
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
             ".pass{background:#dfd}.fail{background:#fdd}.skip,.n\\/a{color:#666}")
    head = "".join(f"<th>{h}</th>" for h in ["name", "metric", "expected ± tol", "measured", "delta", "status", "source", "alternative (|Δ| to expected)", "cost", "reason", "reference"])
    body = "".join(
        f"<tr class='{html.escape(r.status)}'>" + "".join(f"<td>{html.escape(c)}</td>" for c in [
            r.name, r.metric, f"{r.expected:.4f} ± {r.tolerance:.4f}", _num(r.measured), _num(r.delta, True), MARK[r.status], r.source_kind,
            "; ".join(r.alternatives) or "—", r.cost, r.reason, r.source]) + "</tr>"
        for r in rows)
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Reproduction matrix</title><style>{style}</style></head><body>\n"
            f"<h2>Reproduction matrix</h2>\n<table><tr>{head}</tr>{body}</table>\n<p>{html.escape(summary(rows))}</p>\n<p>{html.escape(SOURCE_NOTE)}</p>\n</body></html>\n")


# The matrix files, by name: write_matrix writes exactly these (the invariant suite checks each).
OUTPUTS: dict[str, Callable[[list[Row]], str]] = {
    "matrix.json": lambda rows: json.dumps([dataclasses.asdict(r) for r in rows], indent=2, ensure_ascii=False) + "\n",
    "matrix.md": lambda rows: "# Reproduction matrix\n\n" + to_markdown(rows),
    "matrix.html": lambda rows: to_html(rows),
}


def write_matrix(folder: Path, rows: list[Row]) -> None:
    """Each of :data:`OUTPUTS` (``matrix.json`` with the typed rows, ``matrix.md``, ``matrix.html``) in ``folder``, each written atomically."""
    folder = Path(folder)
    for name, render in OUTPUTS.items():
        atomic_write_text(folder / name, render(rows))


def exit_code(rows: list[Row]) -> int:
    """1 when any row is ✘, else 0 (skips and n/a do not fail a run)."""
    return int(any(r.status == "fail" for r in rows))


def reproduce(names: str, ctx: Context, *, folder: Path = DEFAULT_DIR, max_cost: Cost = "expensive") -> list[Row]:
    """Load, select, run, render: the rows of the matrix, also written under ``ctx.out``."""
    entries = load_entries(folder)
    chosen = select(entries, names)
    ctx = dataclasses.replace(ctx, entries={e.name: e for e in entries})
    rows = matrix_rows(chosen, run_entries(chosen, ctx, max_cost))
    write_matrix(ctx.out, rows)
    return rows

