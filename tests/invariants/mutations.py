"""The mutation check of issue 31: put each defect back, one at a time, in a copy of the tree; the invariant suite must fail.

    python tests/invariants/mutations.py              # every mutation, one after the other (~2 min each on 2 cores)
    python tests/invariants/mutations.py 2 5a         # some, by id

For each mutation it copies the tree (the files git tracks and the untracked ones it does not ignore),
applies the mutation's edits, runs ``pytest tests/invariants`` there, and prints the invariant tests
that failed; a mutation no test catches is reported as SURVIVED and the script exits 1.
``tests/invariants/test_mutations.py`` checks that every edit still applies to the current code (its
text is found exactly once), so this list cannot silently rot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    id: str
    defect: str
    edits: tuple[tuple[str, str, str], ...]  # (file, text found exactly once, its replacement)


MUTATIONS = (
    Mutation("1a", "Table 1 takes a cell of any split (the train split's result lands in BEIR-DPR)",
             (("benchmarks/table.py", "for (row, col), r in table.cells.items() if col.split == EVAL_SPLIT]", "for (row, col), r in table.cells.items()]"),)),
    Mutation("1b", "results of other settings share one row; the last given wins a cell, not the newest",
             (("benchmarks/cells.py", "        several = len({json.dumps(s, sort_keys=True) for s in known}) > 1", "        several = False"),
              ("benchmarks/cells.py", "        ordered = _newest_first(rs)", "        ordered = rs[::-1]"))),
    Mutation("1c", "a mean is taken across splits", (("benchmarks/table.py", "        groups.setdefault(split_of(c), []).append(c)", "        groups.setdefault(EVAL_SPLIT, []).append(c)"),)),
    Mutation("1d", "an MTEB run of a BEIR dataset counts in that dataset's row (averaged into the BEIR column)",
             (("benchmarks/cells.py", '        sig["evaluator"] = "MTEB"', "        pass"),)),
    Mutation("2", "the result key does not cover the code that computes the number",
             (("benchmarks/pipeline.py", "settings=spec.settings(retriever.kind), code=code_of(job, retriever))", "settings=spec.settings(retriever.kind))"),)),
    Mutation("3", "a reproduction tolerance may accept the alternative its figure claims to differ from",
             (("benchmarks/entries.py", "    gap = abs(alt.value - entry.expected)\n", "    gap = abs(alt.value - entry.expected)\n    return\n"),)),
    Mutation("4", "the trained-model folder ignores the resolved dtype and the device",
             (("benchmarks/reproduce.py", '"dtype_resolved": precision.dtype, "device_type": device.split(":")[0], ', ""),)),
    Mutation("5", "BM25 returns documents that share no term with the query (bm25s's padding, ordered by id)",
             (("encoders/bm25.py", "allowed = None if cfg.pad_unmatched else set(index.matching(query_tokens[qi]).tolist())", "allowed = None"),)),
    Mutation("6", "the ColBERT faiss backend returns fewer than k documents, and metrics deeper than the run are reported",
             (("retrieval/multivector.py", "        self.filled = fill_short(self.store, queries, D, I, k)  # fewer candidates than k: exact MaxSim, never a short run",
               "        self.filled = 0"),
              ("benchmarks/job.py", '    short = [] if getattr(retriever, "exhaustive", False) else', '    short = [] if True else'))),
    Mutation("7a", "an empty query is searched like any other", (("benchmarks/job.py", "for q in text_order(queries) if queries[q].strip()}", "for q in text_order(queries)}"),)),
    Mutation("7b", "queries dropped for having no text are not counted in the result",
             (("benchmarks/beir_job.py", ',\n                "queries_without_text": ds.queries_without_text}', "}"),)),
    Mutation("7c", "PyStemmer's version is missing from the identity that keys BM25 results",
             (("encoders/retrievers/bm25.py", ', "PyStemmer": version("PyStemmer")}, **asdict(self.cfg)}', "}, **asdict(self.cfg)}"),)),
    Mutation("7d", "a file that starts with a UTF-8 byte-order mark is refused as malformed JSON",
             (("retrieval/beir.py", "            if lineno == 1 and raw.startswith(BOM):", "            if False:"),)),
)


def tree_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (root / f).is_file()]


def apply(m: Mutation, root: Path) -> None:
    for file, old, new in m.edits:
        path = root / file
        text = path.read_text()
        if text.count(old) != 1:
            raise ValueError(f"mutation {m.id}: {file}: the text to replace is found {text.count(old)} times (expected once): {old!r}")
        path.write_text(text.replace(old, new))


def check(m: Mutation) -> list[str]:
    """Apply ``m`` to a copy of the tree and run the invariant suite there; returns the failing tests."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.id}-") as tmp:
        copy = Path(tmp) / "tree"
        for f in tree_files(ROOT):
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, copy / f)
        apply(m, copy)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        # test_mutations.py is left out: it checks the edits apply to the unmutated code, so it fails on every mutant by design
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "tests/invariants",
                            "--ignore=tests/invariants/test_mutations.py", "-x" if os.environ.get("MUTATION_FAST") else "-q"],
                           cwd=copy, env=env, capture_output=True, text=True)
        return re.findall(r"^FAILED (\S+)", p.stdout, flags=re.M) + re.findall(r"^ERROR (\S+)", p.stdout, flags=re.M)


def main(ids: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not ids or m.id in ids]
    survived = []
    for m in chosen:
        failed = check(m)
        print(f"## mutation {m.id}: {m.defect}")
        print("\n".join(f"- caught by {t}" for t in failed) if failed else "- SURVIVED: no invariant failed")
        print(flush=True)
        if not failed:
            survived.append(m.id)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations caught" + (f"; survived: {', '.join(survived)}" if survived else ""))
    return int(bool(survived))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
