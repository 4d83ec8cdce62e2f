"""Datasets as data: the BEIR names this suite knows and their MTEB tasks.

Where a dataset's files live is :mod:`retrieval.sources`' business; this registry only says what
the suite does with a dataset once loaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """A known BEIR dataset and its MTEB task. Quirks are never looked up by name: :mod:`benchmarks.quirks` reads them from the data."""

    name: str
    mteb_name: str | None = None  # the MTEB task of the same data, for the MTEB adapter


REGISTRY: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("scifact", mteb_name="SciFact"),
        DatasetSpec("nfcorpus", mteb_name="NFCorpus"),
        DatasetSpec("arguana", mteb_name="ArguAna"),
        DatasetSpec("quora", mteb_name="QuoraRetrieval"),
        DatasetSpec("scidocs", mteb_name="SCIDOCS"),
        DatasetSpec("fiqa", mteb_name="FiQA2018"),
        DatasetSpec("trec-covid", mteb_name="TRECCOVID"),
        DatasetSpec("webis-touche2020", mteb_name="Touche2020"),
        DatasetSpec("nq", mteb_name="NQ"),
        DatasetSpec("hotpotqa", mteb_name="HotpotQA"),
        DatasetSpec("fever", mteb_name="FEVER"),
        DatasetSpec("climate-fever", mteb_name="ClimateFEVER"),
        DatasetSpec("dbpedia-entity", mteb_name="DBPedia"),
        DatasetSpec("msmarco", mteb_name="MSMARCO"),
        DatasetSpec("cqadupstack"),
        # Not on BEIR's server: CoSQA in the CoSQA paper's retrieval setting (6,267 functions).
        DatasetSpec("cosqa"),
    ]
}


def spec_for(name: str) -> DatasetSpec:
    """The registry entry for a BEIR name; an unknown folder name gets default quirks."""
    return REGISTRY.get(name.lower(), DatasetSpec(name))
