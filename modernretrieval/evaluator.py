"""An evaluator for the sentence-transformers and PyLate Trainers that runs our pipeline on a dataset slice.

    from modernretrieval.evaluator import RetrievalEvaluator
    evaluator = RetrievalEvaluator("scifact", data_dir="../shared/data", queries=50, distractors=500)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss, evaluator=evaluator)
    # args: eval_strategy="steps", eval_steps=N: every N steps the trainer logs eval_<name>_ndcg@10 and eval_<name>_recall@100

Each call evaluates the model as it is at that step, held in memory (:func:`modernretrieval.api.evaluate`:
keyed by its weights, so every step is a new result), on a slice of the dataset: ``queries`` queries in the
order of their texts' hashes (never the file's), the documents judged for them and ``distractors`` other
documents in content order, written once as a BEIR folder in ``cache_dir``. It returns nDCG@10 and recall@100
(the ``ndcg@10`` metric is the primary one, greater is better) and logs them; ``history`` keeps every call's.
``train.py --eval-every N`` hands one to our own trainer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from sentence_transformers.evaluation import SentenceEvaluator

from benchmarks.spec import make_spec
from benchmarks.tasks import resolve_dataset
from modernretrieval import api
from retrieval.beir import content_order, load_beir, text_order, write_beir_folder

log = logging.getLogger(__name__)

METRICS = ("ndcg@10", "recall@100")


def dataset_slice(dataset: str, *, data_dir: str | None, split: str, queries: int, distractors: int, cache_dir: Path) -> Path:
    """A BEIR folder of ``queries`` queries (text-hash order), their judged documents and ``distractors`` others (content order)."""
    folder = resolve_dataset(dataset, make_spec(datasets=(dataset,), data_dir=data_dir, split=split, cache_dir=str(cache_dir)))
    ds = load_beir(folder, split)
    key = hashlib.sha256(f"{ds.checksum}|{split}|{queries}|{distractors}".encode()).hexdigest()[:12]
    out = Path(cache_dir) / "evaluator-slices" / f"{ds.name}-{key}"
    if (out / "corpus.jsonl").is_file():
        return out
    qids = text_order(ds.queries)[:queries]
    judged = list(dict.fromkeys(d for q in qids for d in ds.qrels[q] if d in ds.corpus))
    others = [d for d in content_order(ds.corpus) if d not in set(judged)][:distractors]
    corpus = {d: dict(ds.corpus[d]) for d in judged + others}
    write_beir_folder(out, corpus, {q: ds.queries[q] for q in qids}, {q: ds.qrels[q] for q in qids}, {"slice_of": str(folder), "checksum": ds.checksum}, split)
    return out


class RetrievalEvaluator(SentenceEvaluator):
    """nDCG@10 and recall@100 of the model being trained on a dataset slice, through our pipeline (module docstring)."""

    def __init__(self, dataset: str, *, data_dir: str | None = None, split: str = "test", queries: int = 50, distractors: int = 500, name: str | None = None,
                 cache_dir: str | os.PathLike | None = None, output: str | os.PathLike | None = None, encoder: str | None = None, **settings):
        super().__init__()
        self.dataset, self.split, self.encoder, self.settings = dataset, split, encoder, settings
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="retrieval-evaluator-"))
        self.output = Path(output) if output else self.cache_dir / "results"
        self.folder = dataset_slice(dataset, data_dir=data_dir, split=split, queries=queries, distractors=distractors, cache_dir=self.cache_dir)
        base = Path(dataset).name
        self.name = name or (base if "slice" in base else f"{base}-slice")
        self.primary_metric = "ndcg@10"
        self.greater_is_better = True
        self.history: list[dict] = []

    def __call__(self, model, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        (r,) = api.evaluate(model, [str(self.folder)], encoder=self.encoder, name=f"{self.name} (training)", output=self.output, cache_dir=str(self.cache_dir), **self.settings)
        metrics = {m: float(r.metrics[m]) for m in METRICS if m in r.metrics}
        self.history.append({"epoch": epoch, "steps": steps, **metrics, "result": r.stem})
        log.info("%s at step %s (epoch %s): %s", self.name, steps, epoch, ", ".join(f"{m} {v:.4f}" for m, v in metrics.items()))
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
