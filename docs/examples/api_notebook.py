"""The Python API as a notebook would use it: a SentenceTransformer held in memory, evaluated on SciFact.

    python docs/examples/api_notebook.py ../shared/data        # the folder holding scifact/

1. the model in memory scores what `modernretrieval evaluate --models minilm` scores (MTEB: 0.6451);
2. the same call again comes from the cache (the same result, nothing encoded);
3. one weight edited in place: another key, encoded again.
"""

import sys
import tempfile
import time

import torch
from sentence_transformers import SentenceTransformer

from encoders.loading import resolve_model
from modernretrieval import api

data_dir = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
work = tempfile.mkdtemp(prefix="api-notebook-")
model = SentenceTransformer(str(resolve_model("minilm").path), device="cpu")  # all-MiniLM-L6-v2 from the offline package

for step in ("first call", "same call again", "after editing one weight"):
    if step == "after editing one weight":
        with torch.no_grad():
            model[0].auto_model.embeddings.word_embeddings.weight[1000, 0] += 0.01
    t = time.perf_counter()
    (r,) = api.evaluate(model, ["scifact"], name="all-MiniLM-L6-v2 (in memory)", data_dir=data_dir, output=f"{work}/results", cache_dir=f"{work}/cache")
    print(f"{step}: nDCG@10 {r.metrics['ndcg@10']:.4f}, key {r.config_key[:12]}, computed at {r.created_at}, "
          f"{r.timings.get('corpus_shards_encoded', 0)} corpus shards encoded, {time.perf_counter() - t:.1f} s")
