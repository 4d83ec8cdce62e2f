"""Reproduction entries: one TOML file per figure, parsed and validated (the file and the key named in every error).

    entries = load_entries(DEFAULT_DIR)          # configs/reproductions/*.toml, validated
    chosen = select(entries, "bm25-*")           # names or globs, comma-separated; "" = all

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
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.spec import SECTIONS, make_spec
from encoders.training.config import TrainConfig
from encoders.training.mining import MiningConfig
from retrieval.flags import ChoiceError, choice, split_list

ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages when installed
# configs/: a checkout's (a link to modernretrieval/configs), else the copy the installed package ships
CONFIGS = next((p for p in (ROOT / "configs", ROOT / "modernretrieval" / "configs") if p.is_dir()), ROOT / "configs")
DEFAULT_DIR = CONFIGS / "reproductions"


COSTS = ("cheap", "moderate", "expensive")


Cost = Literal["cheap", "moderate", "expensive"]


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
        file = Path(recipe) if Path(recipe).is_absolute() else CONFIGS.parent / recipe  # "configs/x.toml", in a checkout or installed
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
