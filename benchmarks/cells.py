"""Which saved result each table cell shows: one rule for every table, layout, figure and significance mark.

    table = choose(results)              # a Table: rows, columns, the result of each (row, column)
    table.cells[row, column]             # -> Result

A **column** is a dataset and a split (:class:`Column`): ``scifact`` (the test split) and
``scifact/train`` are two columns, never one, and a mean is only ever taken over the columns of
one split. An MTEB task is the BEIR dataset of the same data (``SciFact (MTEB)`` is ``scifact``,
:mod:`benchmarks.registry`), so it lands in that dataset's column; a result that says its model
was trained in domain (``in_domain``) has a column of its own.

A **row** is a model's display name, its encoder (retriever kind) and a **variant**: the settings
that tell this result apart from the same model's other results, named in the row label
(``BM25 [top_k=100]``, ``all-MiniLM-L6-v2 [MTEB]``, ``final [rev 3f9c0a]``). Two results with
other settings, another evaluator or other weights are two rows, never one cell: adding results
of other settings to a folder changes no existing cell. Settings are what the run spec keyed
(``provenance.settings``), the evaluator (MTEB or ours) and the model's content hash.

Several results for one cell that ran the same experiment (``provenance.variant_key``: the result
key without code and library versions) differ only in the code, libraries or time that computed
them: the **newest** wins (``created_at``, then the config key, so the choice never depends on file
names or order), and the others are listed as ``superseded`` so a table can say so. Results of one
row and column that ran different experiments the settings do not show are told apart in the row
label: by the data's checksum (two folders called ``scifact`` with other files) or by the variant
key (a fusion whose components had other settings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from benchmarks.registry import REGISTRY
from benchmarks.results import Result

EVAL_SPLIT = "test"  # the split the paper layout's Table 1 reports; other splits appear only in the per-task tables
MTEB_SUFFIX = " (MTEB)"  # benchmarks.mteb_bridge names its results "<Task> (MTEB)"
UNKEYED = ("data.split", "data.task")  # the column says the split; the task (beir, code, longdoc) only groups tables


@dataclass(frozen=True, order=True)
class Column:
    dataset: str  # canonical: our BEIR name for an MTEB task of the same data
    split: str = "test"
    in_domain: bool = False

    @property
    def label(self) -> str:
        """``scifact``, ``scifact/train``, ``mldr (in-domain)``."""
        return self.dataset + ("" if self.split == EVAL_SPLIT else f"/{self.split}") + (" (in-domain)" if self.in_domain else "")


@dataclass(frozen=True)
class Row:
    model: str
    encoder: str
    variant: str = ""  # the settings that tell it apart from the same model's other rows; "" when it has none

    @property
    def label(self) -> str:
        return f"{self.model} [{self.variant}]" if self.variant else self.model


@dataclass
class Table:
    rows: list[Row]  # in the order their first result was given
    columns: list[Column]  # sorted: split, then dataset (natural order: passkey-512 before passkey-1024)
    cells: dict[tuple[Row, Column], Result]
    superseded: list[tuple[Result, Result]] = field(default_factory=list)  # (older result, the result its cell shows)
    where: dict[tuple, tuple[Row, Column]] = field(default_factory=dict)  # rid(result) -> its cell, for every result given

    def cell_of(self, r: Result) -> tuple[Row, Column]:
        """The (row, column) a result belongs to (shown or superseded)."""
        return self.where[rid(r)]

    def restrict(self, keep) -> "Table":
        """The same choice over the cells whose shown result satisfies ``keep`` (one task's table): rows and labels unchanged."""
        cells = {k: r for k, r in self.cells.items() if keep(r)}
        used = set(cells)
        return Table([row for row in self.rows if any(k[0] == row for k in used)], [c for c in self.columns if any(k[1] == c for k in used)], cells,
                     [(o, n) for o, n in self.superseded if keep(n)], {k: v for k, v in self.where.items() if v in used})

    def with_metric(self, metric: str) -> "Table":
        """The cells whose shown result reports ``metric`` (a newer result without it is not replaced by an older one); rows kept."""
        cells = {k: r for k, r in self.cells.items() if metric in r.metrics}
        return Table(self.rows, [c for c in self.columns if any(k[1] == c for k in cells)], cells, self.superseded, self.where)

    def shown(self) -> list[Result]:
        """The results the cells show, row by row, column by column."""
        return [self.cells[(row, col)] for row in self.rows for col in self.columns if (row, col) in self.cells]

    def splits(self) -> list[str]:
        return list(dict.fromkeys(c.split for c in self.columns))


def rid(r: Result) -> tuple:
    """What tells two results apart, the same whether read from disk or just computed (a Result is not hashable)."""
    return (r.model, r.encoder, r.dataset, r.split, r.config_key, r.created_at)


def natural(name: str) -> tuple:
    """``passkey-512`` before ``passkey-1024``: split off a trailing number."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail), "") if tail.isdigit() else (name, -1, "")


def _mteb_names() -> dict[str, str]:
    return {s.mteb_name.lower(): name for name, s in REGISTRY.items() if s.mteb_name}


def column_of(r: Result) -> Column:
    """The column a result belongs to: its dataset (an MTEB task as its BEIR dataset), split and in-domain flag."""
    name = r.dataset
    if r.task == "mteb":
        task = name[: -len(MTEB_SUFFIX)] if name.endswith(MTEB_SUFFIX) else name
        name = _mteb_names().get(task.lower(), task)
    return Column(name, r.split, bool(r.provenance.get("in_domain")))


def signature(r: Result) -> dict[str, str] | None:
    """What was run, besides the dataset, split, code and time: the keyed settings, the evaluator, the model's weights.

    None for results written before settings were recorded.
    """
    prov = r.provenance
    if "settings" not in prov:
        return None
    sig = {k.rpartition(".")[2]: json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for k, v in prov["settings"].items() if k not in UNKEYED}
    if r.task == "mteb":
        sig["evaluator"] = "MTEB"
    if prov.get("model_revision"):
        sig["rev"] = str(prov["model_revision"])
    return sig


def _describe(key: str, value: str | None) -> str:
    if key == "evaluator":
        return value or ""  # only MTEB's runs say which evaluator; ours is the default
    if value is None:
        return f"{key} unset"
    if key == "rev":
        return f"rev {value[:6]}"
    return f"{key}={value}"


def variants(results: Iterable[Result]) -> dict[tuple, str]:
    """``rid(result) -> variant label``: per (model, encoder), the settings whose values differ among its results.

    A result written before settings were recorded joins its model's row when that row has one set of
    settings, and is labelled ``settings unrecorded`` when there are several (it could be any of them).
    """
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.model, r.encoder), []).append(r)
    out: dict[tuple, str] = {}
    for rs in groups.values():
        sigs = {rid(r): signature(r) for r in rs}
        known = [s for s in sigs.values() if s is not None]
        keys = sorted({k for s in known for k in s})
        varying = [k for k in keys if len({s.get(k) for s in known}) > 1]
        several = len({json.dumps(s, sort_keys=True) for s in known}) > 1  # results without recorded settings join the one known row
        for r in rs:
            s = sigs[rid(r)]
            if not several:
                out[rid(r)] = ""
            elif s is None:
                out[rid(r)] = "settings unrecorded"
            else:
                out[rid(r)] = ", ".join(x for x in (_describe(k, s.get(k)) for k in varying) if x)
    return out


def _data(r: Result) -> str:
    return str(r.provenance.get("dataset_checksum") or r.provenance.get("mteb_dataset") or "")


def _experiment(r: Result) -> str:
    """What a result ran, code and library versions aside (``provenance.variant_key``, written by the pipeline);
    results written before it was recorded count by their data."""
    return str(r.provenance.get("variant_key") or f"data:{_data(r)}")


def _split_experiments(row: Row, rs: list[Result]) -> dict[Row, list[Result]]:
    """Results of one (row, column) that ran different experiments (other data, or settings the spec does not
    show, such as a fusion's component settings) -> one row each, labelled by data checksum or variant key."""
    parts: dict[str, list[Result]] = {}
    for r in rs:
        parts.setdefault(_experiment(r), []).append(r)
    for key in [k for k in parts if k.startswith("data:")]:  # written before variant keys: joins the one experiment on its data
        same = [k for k in parts if not k.startswith("data:") and _data(parts[k][0]) == key[len("data:"):]]
        if len(same) == 1:
            parts[same[0]] += parts.pop(key)
    if len(parts) == 1:
        return {row: rs}
    datas = {_data(part[0]) for part in parts.values()}
    out: dict[Row, list[Result]] = {}
    for key, part in parts.items():
        same_data = [k for k, p in parts.items() if _data(p[0]) == _data(part[0])]
        extra = ([f"data {_data(part[0])[:6]}"] if len(datas) > 1 else []) + ([f"config {key[:6]}"] if len(same_data) > 1 else [])
        out[Row(row.model, row.encoder, ", ".join(x for x in (row.variant, *extra) if x))] = part
    return out


def _newest_first(rs: list[Result]) -> list[Result]:
    return sorted(rs, key=lambda r: (r.created_at, r.config_key), reverse=True)


def choose(results: Iterable[Result], everything: Iterable[Result] | None = None) -> Table:
    """The table model of ``results`` (see the module docstring).

    ``everything``: the results the variant labels are decided over (default ``results``), e.g. the whole
    folder when ``results`` is one run's, so a row is labelled alike in every table of one rendering.
    """
    results = list(results)
    variant = variants([*results, *(everything or [])])
    groups: dict[tuple[Row, Column], list[Result]] = {}
    for r in results:
        groups.setdefault((Row(r.model, r.encoder, variant[rid(r)]), column_of(r)), []).append(r)
    experiments: dict[tuple[Row, Column], list[Result]] = {}
    for (row, col), rs in groups.items():
        for r2, part in _split_experiments(row, rs).items():
            experiments[(r2, col)] = part
    cells, superseded, where = {}, [], {}
    for key, rs in experiments.items():
        ordered = _newest_first(rs)
        cells[key] = ordered[0]
        superseded += [(old, ordered[0]) for old in ordered[1:]]
        where.update({rid(r): key for r in rs})
    rows = list(dict.fromkeys(where[rid(r)][0] for r in results))
    columns = sorted({col for _, col in cells}, key=lambda c: (c.split != EVAL_SPLIT, c.split, natural(c.dataset), c.in_domain))
    return Table(rows, columns, cells, superseded, where)


def superseded_note(table: Table) -> list[str]:
    """One line per cell that had older results of the same settings: what was left out and why."""
    by_cell: dict[tuple[Row, Column], list[Result]] = {}
    for old, new in table.superseded:
        by_cell.setdefault(table.cell_of(new), []).append(old)
    lines = []
    for (row, col), olds in by_cell.items():
        shown = table.cells[(row, col)]
        lines.append(f"{row.label} ({row.encoder}) on {col.label}: showing the newest result ({shown.created_at}, key {shown.config_key[:12]}); "
                     f"{len(olds)} older result(s) of the same settings left out ({', '.join(o.config_key[:12] for o in _newest_first(olds))})")
    return lines
