"""The run spec: one frozen, typed config per concern, validated once at the CLI, hashed into every key.

    RunSpec(data=DataConfig(...), model=ModelConfig(...), encoding=EncodingConfig(...),
            index=IndexConfig(...), output=OutputConfig(...))

``settings(kind)`` is every field that changes the scores of a retriever kind (each field says
which kinds in its ``kinds`` metadata); :func:`benchmarks.pipeline` hashes it, with the dataset's
checksum and the retriever's own identity, into the cache key of its artefacts and the key and
file name of its result. Fields with ``kinds=()`` (where output goes, which models and datasets
to iterate over) never change a number.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from encoders.retrievers.config import ALL, EncodingConfig, FusionConfig, IndexConfig, ModelConfig, applies
from encoders.retrievers.colbert import backend_for
from encoders.retrievers.fusion import resolve as resolve_fusion
from retrieval.fusion import parse_fusion
from retrieval.flags import add_flags, check_fields, flag_field, from_args

Task = Literal["beir", "mteb", "longdoc", "code", "all"]
Layout = Literal["default", "paper"]
StatTest = Literal["t", "randomization", "wilcoxon"]  # the keys of benchmarks.significance.TESTS
Correction = Literal["holm", "bonferroni", "none"]  # the keys of benchmarks.significance.CORRECTIONS


@dataclass(frozen=True)
class DataConfig:
    task: Task = flag_field("beir", "what to evaluate", kinds=ALL)
    datasets: tuple[str, ...] = flag_field((), "comma-separated dataset names or BEIR-format folders (default per task: beir=scifact, code=cosqa, longdoc=passkey/needle/concat suites)", kinds=(), list=True)
    mteb_tasks: tuple[str, ...] = flag_field((), "mteb: comma-separated MTEB task names, e.g. SciFact,NFCorpus (default: the MTEB names of --datasets, else SciFact); a task whose BEIR folder is found locally reads it instead of MTEB's pinned revision", kinds=(), list=True)
    data_dir: str | None = flag_field(None, "folder holding BEIR datasets by name (else $RETRIEVAL_DATA_DIR, the cache, or BEIR's URL)", kinds=())  # content is keyed by checksum
    split: str = flag_field("test", "qrels split to evaluate", kinds=ALL)
    ignore_identical_ids: Literal["auto", "on", "off"] = flag_field("auto", "drop each query's hit on the document with its own id: auto decides from the data (query ids that are corpus ids of the same text, never judged relevant to themselves: ArguAna, Quora), on or off force it", kinds=ALL)


@dataclass(frozen=True)
class OutputConfig:
    output: str = flag_field("results", "folder for result JSONs, run files and the leaderboard", kinds=())
    cache_dir: str | None = flag_field(None, "embedding/index cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)", kinds=())
    no_cache: bool = flag_field(False, "recompute everything: ignore cached results, embeddings and indexes", kinds=())
    save_run: bool = flag_field(False, "also write a TREC run file per result", kinds=())
    leaderboard: str | None = flag_field(None, "only re-render the leaderboard from saved results in this folder", kinds=())
    layout: Layout = flag_field("default", "leaderboard layout: default (per dataset) or paper (ModernBERT Table 1 columns + per-task breakdowns, also HTML and PNG)", kinds=())


@dataclass(frozen=True)
class CompareConfig:
    """Significance against a baseline in the rendered tables (``benchmarks.significance``).

    Render only: these settings decide markers, intervals and legends, never a score, so no
    field is keyed (``kinds=()``). Without ``baseline`` the tables are exactly as before.
    """

    baseline: str | None = flag_field(None, "mark every score that differs significantly from this row (a display name such as BM25, or a model as given to --models), add 95% bootstrap CIs, a legend and per-query difference plots", kinds=())
    test: StatTest = flag_field("t", "paired test against the baseline: t (Student), randomization (Fisher, sign flips), wilcoxon (signed rank)", kinds=())
    correction: Correction = flag_field("holm", "multiple-comparison correction over the comparisons of one table", kinds=())
    alpha: float = flag_field(0.05, "significance level, after the correction", kinds=())
    permutations: int = flag_field(10_000, "randomization test: sign-flip permutations", kinds=())
    bootstrap: int = flag_field(1_000, "bootstrap resamples of the queries for each 95% CI", kinds=())  # 1,000 moves a CI bound by ~1e-3 on 300 queries
    stats_seed: int = flag_field(0, "seed of the randomization test and the bootstrap (same seed, byte-identical tables)", kinds=())
    ci: bool = flag_field(True, "show ± (half the 95% bootstrap CI of the mean) beside scores that have per-query scores, in Markdown, LaTeX and HTML (the CSVs always have both bounds)", kinds=())

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"--alpha must lie in (0, 1), got {self.alpha}")
        for name in ("permutations", "bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "encoding": EncodingConfig, "index": IndexConfig, "fusion": FusionConfig, "output": OutputConfig, "compare": CompareConfig}
GROUP_TITLES = {"data": "data", "model": "model", "encoding": "encoding", "index": "index and search", "fusion": "fusion (--models a+b)", "output": "output", "compare": "significance against a baseline (tables only)", "distributed": "distributed and resume", "advanced": "advanced"}


@dataclass(frozen=True)
class RunSpec:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def __post_init__(self):
        for name in SECTIONS:
            check_fields(getattr(self, name))
        if self.model.encoder == "colbert":
            backend_for(self.index.index)  # an unknown ColBERT --index fails here, before any model loads
        for entry in self.model.models:  # bad fusion syntax (bm25+, bm25*x+minilm) or flags that do not fit it (weights with rrf) fail here too
            parts = parse_fusion(entry)
            if parts is not None:
                try:
                    resolve_fusion(self.fusion, None if parts[0][1] is None else [w for _, w in parts])
                except ValueError as e:
                    raise ValueError(f"--models {entry!r}: {e}") from None

    def settings(self, kind: str, sections: tuple[str, ...] = tuple(SECTIONS)) -> dict:
        """``{"section.field": value}`` for every field of ``sections`` that changes the scores of ``kind``."""
        out = {}
        for name in sections:
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                if applies(f, kind):
                    out[f"{name}.{f.name}"] = getattr(section, f.name)
        return out

    def replace(self, **changes) -> "RunSpec":
        """``spec.replace(task="code", top_k=10)``: fields by name, whatever their section."""
        by_section: dict[str, dict] = {}
        for key, value in changes.items():
            section = next((s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}), None)
            if section is None:
                raise TypeError(f"RunSpec has no field {key!r}")
            by_section.setdefault(section, {})[key] = value
        return dataclasses.replace(self, **{s: dataclasses.replace(getattr(self, s), **kw) for s, kw in by_section.items()})


def make_spec(**fields) -> RunSpec:
    """A spec from flat field names (``make_spec(datasets=("scifact",), models=("bm25",))``)."""
    return RunSpec().replace(**fields)


def add_spec_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...] = tuple(SECTIONS)) -> None:
    """One argparse group per section of ``sections``; every field a flag (see :func:`retrieval.flags.add_flags`)."""
    used = {f.metadata.get("group", name) for name in sections for f in dataclasses.fields(SECTIONS[name])}
    groups = {name: parser.add_argument_group(title) for name, title in GROUP_TITLES.items() if name in used}  # in GROUP_TITLES' order
    for name in sections:
        add_flags(parser, SECTIONS[name], group_of=lambda f, name=name: groups[f.metadata.get("group", name)])


def spec_from_args(ns: argparse.Namespace) -> RunSpec:
    """The spec of parsed flags; a section none of whose flags the parser had takes its defaults."""
    return RunSpec(**{name: from_args(ns, cls) if all(hasattr(ns, f.name) for f in dataclasses.fields(cls)) else cls() for name, cls in SECTIONS.items()})
