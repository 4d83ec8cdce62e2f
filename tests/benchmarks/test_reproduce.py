"""The reproduction matrix: entry validation (file and key named), inputs found or skipped with the reason,
the ✔/✘ judgement on hand-made rows, the exit code, train-step caching; the cheap rows on the real data (slow)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import evaluate
from benchmarks import entries, reproduce
from benchmarks.render import matrix
from benchmarks.entries import Entry, EntryError, TrainStep
from benchmarks.render.matrix import Outcome
from benchmarks.reproduce import Context
from tests.conftest import make_beir


def entry_text(name="tiny-bm25", expected=1.0, tolerance=0.001, run=None, extra="", train=""):
    run = run or 'models = "bm25"\ndatasets = ["nowhere"]'
    return (f'name = "{name}"\ndescription = "a test figure"\nexpected = {expected}\ntolerance = {tolerance}\nsource = "hand-made"\n'
            f'source_kind = "published"\ncost = "cheap"\ncpu_time = "~1 s"\n{extra}\n[run]\n{run}\n'
            + (f"\n[train]\n{train}\n\n[[alternative]]\nvalue = 0.0\ndescription = 'the untrained model'\n" if train else ""))


def write_entry(folder: Path, text: str, file: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (file or "entry.toml")
    path.write_text(text)
    return path


def hand_entry(name, expected=0.5, tolerance=0.01, **kw) -> Entry:
    return Entry(name=name, path=Path(f"{name}.toml"), description="d", expected=expected, tolerance=tolerance, source=f"src-{name}",
                 cost=kw.pop("cost", "cheap"), cpu_time="1 s", run={"models": ("bm25",), "datasets": ("x",)}, **kw)


# ---------------------------------------------------------------- the matrix from hand-made outcomes (pure)


def test_rows_pass_inside_tolerance_fail_outside_skip_and_na_with_reason():
    entries = [hand_entry("inside"), hand_entry("edge"), hand_entry("outside"), hand_entry("missing"), hand_entry("broken"), hand_entry("other-data", not_applicable="other corpus")]
    outcomes = {"inside": Outcome(measured=0.505), "edge": Outcome(measured=0.51), "outside": Outcome(measured=0.4899),
                "missing": Outcome(reason="data not here: x"), "broken": Outcome(reason="error: RuntimeError: boom", failed=True),
                "other-data": Outcome(reason="not applicable: other corpus")}
    rows = matrix.matrix_rows(entries, outcomes)
    assert [r.status for r in rows] == ["pass", "pass", "fail", "skip", "fail", "n/a"]
    assert rows[0].delta == pytest.approx(0.005) and rows[2].delta == pytest.approx(-0.0101)
    assert rows[2].reason == "outside ±0.01" and rows[3].reason == "data not here: x" and rows[3].measured is None and rows[3].delta is None
    assert rows[4].reason.startswith("error:") and rows[5].reason == "not applicable: other corpus"
    assert matrix.exit_code(rows) == 1
    assert matrix.exit_code([rows[0], rows[3], rows[5]]) == 0  # skips and n/a never fail a run


def test_markdown_and_html_show_marks_values_and_escape(tmp_path):
    entries = [hand_entry("ok"), hand_entry("bad"), hand_entry("gone")]
    rows = matrix.matrix_rows(entries, {"ok": Outcome(measured=0.5), "bad": Outcome(measured=0.7), "gone": Outcome(reason="weights: <none> | here")})
    md = matrix.to_markdown(rows)
    assert "| ok | ndcg@10 | 0.5000 ± 0.0100 | 0.5000 | +0.0000 | ✔ | published | — | cheap | src-ok |" in md
    assert "| bad | ndcg@10 | 0.5000 ± 0.0100 | 0.7000 | +0.2000 | ✘ |" in md
    assert "weights: <none> \\| here — source: src-gone" in md and "\n\n1 ✔, 1 ✘, 1 skip\n" in md
    page = matrix.to_html(rows)
    assert "&lt;none&gt;" in page and "<none>" not in page and "<tr class='fail'>" in page
    matrix.write_matrix(tmp_path, rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.html", "matrix.json", "matrix.md"]  # no temp files left
    assert [r["status"] for r in json.loads((tmp_path / "matrix.json").read_text())] == ["pass", "fail", "skip"]


def test_select_by_names_and_globs_and_unknown_names():
    hand = [hand_entry(n) for n in ("bm25-scifact", "bm25-nfcorpus", "minilm-scifact")]
    assert [e.name for e in entries.select(hand, "")] == ["bm25-scifact", "bm25-nfcorpus", "minilm-scifact"]
    assert [e.name for e in entries.select(hand, "*-scifact, bm25-*")] == ["bm25-scifact", "minilm-scifact", "bm25-nfcorpus"]
    with pytest.raises(ValueError, match="no entry matches 'bm25-scifct'; did you mean 'bm25-scifact'"):
        entries.select(hand, "bm25-scifct")


def test_max_cost_skips_without_running(monkeypatch):
    ran = []
    monkeypatch.setattr(reproduce, "run_entry", lambda e, ctx: ran.append(e.name) or Outcome(measured=0.5))
    entries = [hand_entry("cheap"), hand_entry("slow", cost="moderate"), hand_entry("na", cost="cheap", not_applicable="other data")]
    out = reproduce.run_entries(entries, Context(out=Path("unused")), "cheap")
    assert ran == ["cheap"]
    assert out["slow"].reason == "cost moderate (1 s) is above --max-cost cheap" and out["na"].reason == "not applicable: other data"


# ---------------------------------------------------------------- validation: every error names the file and the key


@pytest.mark.parametrize("text, message", [
    (entry_text(extra="expectd = 0.5"), "expectd: unknown key; did you mean 'expected'?"),
    (entry_text().replace("expected = 1.0\n", ""), "expected: missing"),
    (entry_text(tolerance=-0.1), "tolerance: -0.1 must be in (0, 1)"),
    (entry_text(tolerance=0), "tolerance: 0 must be in (0, 1)"),
    (entry_text(tolerance='"0.01"'), "tolerance: expected float, got '0.01'"),
    (entry_text(expected=64.5), "expected: 64.5 is not a metric value in [0, 1]"),
    (entry_text(extra='cost = "cheapish"').replace('cost = "cheap"\n', "", 1), "cost: 'cheapish' is not one of cheap, moderate, expensive"),
    (entry_text(run='models = "bm25"\ndatasets = ["x"]\nencodr = "dpr"'), "run.encodr: unknown key; did you mean 'encoder'?"),
    (entry_text(run='models = "bm25"\ndatasets = ["x"]\nencoder = "colbret"'), "run.encoder: unknown value 'colbret'; did you mean 'colbert'?"),
    (entry_text(run='models = "bm25"\ndatasets = ["x"]\ntop_k = "10"'), "run.top_k: expected int, got '10'"),
    (entry_text(run='models = "bm25"\ndatasets = ["x"]\noutput = "elsewhere"'), "run.output: set on the command line"),
    (entry_text(run='models = "bm25,minilm"\ndatasets = ["x"]'), "run.models: exactly one --models entry per figure"),
    (entry_text(run='models = "bm25"'), "run.datasets: missing"),
    (entry_text(run='datasets = ["x"]', train='model = "minilm"\nlrr = 1e-5'), "train.lrr: unknown key; did you mean 'lr'?"),
    (entry_text(run='datasets = ["x"]', train='output = "runs/x"'), "train.output: set by the runner"),
    (entry_text(run='models = "bm25"\ndatasets = ["x"]', train='model = "minilm"'), "run.models: the [train] step's output is the model"),
    (entry_text(run='datasets = ["x"]\nencoder = "dpr"', train='encoder = "colbert"'), "run.encoder: 'dpr' differs from the trained encoder 'colbert'"),
    (entry_text(run='datasets = ["x"]', train='config = "configs/no-such-recipe.toml"'), "train.config: recipe 'configs/no-such-recipe.toml' not found"),
    ("name = 'x'\nexpected = 0.5 0.6\n", "(at line 2, column 16)"),  # a TOML syntax error keeps tomllib's line and column
])
def test_entry_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = write_entry(tmp_path, text)
    with pytest.raises(EntryError) as err:
        entries.parse_entry(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_folder_errors_duplicate_names_and_bad_references(tmp_path):
    write_entry(tmp_path / "dup", entry_text(), "a.toml")
    write_entry(tmp_path / "dup", entry_text(), "b.toml")
    with pytest.raises(EntryError, match=r"b\.toml: name: 'tiny-bm25' is also the name of .*a\.toml"):
        entries.load_entries(tmp_path / "dup")
    write_entry(tmp_path / "ref", entry_text(name="student", run='datasets = ["x"]', train='model = "minilm"\nteacher = "entry:techer"'))
    write_entry(tmp_path / "ref", entry_text(name="teacher", run='datasets = ["x"]', train='model = "minilm"'), "t.toml")
    with pytest.raises(EntryError, match=r"entry\.toml: train\.teacher: 'entry:techer' is not an entry with a \[train\] step; did you mean 'teacher'"):
        entries.load_entries(tmp_path / "ref")


def test_recipe_settings_then_entry_overrides_and_types():
    step = entries.parse_train(Path("e.toml"), {"config": "configs/minilm-scifact-dpr.toml", "train_data": "nfcorpus", "lr": 1, "max_examples": 2000})
    assert step.settings["mine_method"] == "bm25" and step.settings["mine_rank_start"] == 3  # from the recipe
    assert step.settings["train_data"] == "nfcorpus" and step.settings["lr"] == 1.0 and isinstance(step.settings["lr"], float)


def test_shipped_entries_validate():
    shipped = entries.load_entries()
    names = {e.name for e in shipped}
    assert len(shipped) >= 40
    assert {"bm25-scifact-mteb", "bm25-nfcorpus-local", "bm25-cosqa-local", "minilm-scifact-mteb", "fusion-rrf-scifact", "sf-colbert-d", "modernbert-large-sqa"} <= names
    by = {e.name: e for e in shipped}
    assert by["minilm-cosqa-mteb"].not_applicable and by["bm25-cosqa-mteb"].not_applicable  # MTEB's CosQA is another corpus
    assert not by["bm25-cosqa-local"].not_applicable
    assert all(e.needs and e.cost == "expensive" for e in shipped if e.name.startswith("modernbert-"))
    assert by["sf-colbert-d"].train.settings["teacher"] == "entry:minilm-ft-scifact"
    assert by["fusion-rrf-scifact"].run["fusion"] == "rrf" and by["fusion-rrf-scifact"].run["rrf_k"] == 60
    assert all(e.cost == "cheap" for e in shipped if e.model == "bm25" and not e.not_applicable)


# ---------------------------------------------------------------- inputs: skipped with the reason


def tiny_ctx(tmp_path, **kw) -> Context:
    return Context(out=tmp_path / "out", cache_dir=str(tmp_path / "cache"), **kw)


def test_missing_data_and_weights_are_skip_reasons(tmp_path, monkeypatch):
    data = make_beir(tmp_path / "tiny")
    ctx = tiny_ctx(tmp_path)
    no_data = entries.parse_entry(write_entry(tmp_path / "e1", entry_text()))
    assert reproduce.run_entry(no_data, ctx).reason.startswith("data not here: nowhere (looked in --data-dir")
    no_split = entries.parse_entry(write_entry(tmp_path / "e2", entry_text(run=f'models = "bm25"\ndatasets = ["{data}"]\nsplit = "dev"')))
    assert reproduce.missing_inputs(no_split, ctx).startswith(f"data not here: {data} has no qrels/dev.tsv")
    no_folder = entries.parse_entry(write_entry(tmp_path / "e3", entry_text(run=f'models = "{tmp_path}/runs/none"\ndatasets = ["{data}"]', extra='needs = "weights: a fine-tune"')))
    assert reproduce.run_entry(no_folder, ctx).reason == f"weights: model folder {tmp_path}/runs/none not found — needs weights: a fine-tune"
    (tmp_path / "empty-model").mkdir()
    assert reproduce.missing_model(str(tmp_path / "empty-model")).endswith("holds no weight files (*.safetensors, *.bin)")
    monkeypatch.setattr(reproduce.hf_constants, "HF_HUB_OFFLINE", True)
    assert "not in the local Hugging Face cache and the hub is offline" in reproduce.missing_model("some-org/surely-not-cached-model")
    assert reproduce.missing_model("bm25+some-org/surely-not-cached-model").startswith("weights: some-org/surely-not-cached-model")  # a fusion: its components
    assert reproduce.missing_model("minilm") is None and reproduce.missing_model("bm25") is None


def test_unsupported_model_spec_is_a_skip_and_a_failing_run_a_miss(tmp_path, monkeypatch):
    data = make_beir(tmp_path / "tiny")
    ctx = tiny_ctx(tmp_path)
    fused = entries.parse_entry(write_entry(tmp_path / "e1", entry_text(run=f'models = "bm25+minilm"\ndatasets = ["{data}"]')))

    def no_fusion(name, spec, built=None):  # a registry from before fusion: the whole entry is taken for one hub id
        raise FileNotFoundError(f"model {name!r} is neither an alias (minilm), a local folder, nor a reachable hub id")

    monkeypatch.setattr(reproduce.models, "build", no_fusion)
    out = reproduce.run_entry(fused, ctx)
    assert not out.failed and out.reason.startswith("model spec 'bm25+minilm' is not supported by this version's --models registry (FileNotFoundError")

    plain = entries.parse_entry(write_entry(tmp_path / "e2", entry_text(run=f'models = "bm25"\ndatasets = ["{data}"]')))
    monkeypatch.setattr(reproduce.pipeline, "run", lambda spec: (_ for _ in ()).throw(RuntimeError("boom")))
    out = reproduce.run_entry(plain, ctx)
    assert out.failed and out.reason == "error: RuntimeError: boom"
    assert matrix.matrix_rows([plain], {plain.name: out})[0].status == "fail"


# ---------------------------------------------------------------- end to end through evaluate.py (BM25 on a 2-document corpus)


def test_cli_matrix_exit_code_and_cached_rerun(tmp_path):
    data = make_beir(tmp_path / "tiny")  # q1 "alpha?" -> d1 "T1 alpha": BM25 ranks d1 first, nDCG@10 = 1 (q2 has no qrels)
    entries = tmp_path / "entries"
    run = f'task = "beir"\nmodels = "bm25"\ndatasets = ["{data}"]'
    write_entry(entries, entry_text("tiny-pass", expected=1.0, tolerance=0.001, run=run), "pass.toml")
    write_entry(entries, entry_text("tiny-miss", expected=0.5, tolerance=0.01, run=run), "miss.toml")
    write_entry(entries, entry_text("tiny-nodata", run='models = "bm25"\ndatasets = ["nowhere"]'), "nodata.toml")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--reproductions", str(entries), "--output", str(out), "--cache-dir", str(cache), "-q"]
    assert evaluate.main(["--reproduce", *args]) == 1  # one ✘
    rows = {r["name"]: r for r in json.loads((out / "reproductions" / "matrix.json").read_text())}
    assert {n: r["status"] for n, r in rows.items()} == {"tiny-miss": "fail", "tiny-nodata": "skip", "tiny-pass": "pass"}
    assert rows["tiny-pass"]["measured"] == pytest.approx(1.0) and rows["tiny-miss"]["delta"] == pytest.approx(0.5)
    stem = rows["tiny-pass"]["results"][0]
    assert (out / "reproductions" / "results" / f"{stem}.json").is_file() and rows["tiny-miss"]["results"] == [stem]  # one run, one cached result
    assert "| tiny-pass | ndcg@10 | 1.0000 ± 0.0010 | 1.0000 | +0.0000 | ✔ |" in (out / "reproductions" / "matrix.md").read_text()
    assert evaluate.main(["--reproduce", "tiny-pass,tiny-no*", *args]) == 0  # ✔ and skip only
    assert evaluate.main(["--reproduce", "tiny-pas", *args]) == 2  # a name matching nothing
    write_entry(entries, entry_text("tiny-bad", tolerance=2), "bad.toml")
    assert evaluate.main(["--reproduce", *args]) == 2  # an entry that does not validate


# ---------------------------------------------------------------- the train step: keyed cache folder, reused when complete


def test_train_step_keyed_folder_reused_and_references_trained_first(tmp_path, monkeypatch):
    data = make_beir(tmp_path / "tiny", split="train")
    a = Entry(name="teacher", path=Path("a.toml"), description="d", expected=0.5, tolerance=0.01, source="s", cost="expensive", cpu_time="1 h",
              run={"datasets": ("x",)}, train=TrainStep({"model": "minilm", "train_data": str(data), "lr": 3e-5}))
    b = Entry(name="student", path=Path("b.toml"), description="d", expected=0.5, tolerance=0.01, source="s", cost="expensive", cpu_time="1 h",
              run={"datasets": ("x",), "encoder": "colbert"}, train=TrainStep({"encoder": "colbert", "model": "minilm", "train_data": str(data), "teacher": "entry:teacher"}))
    ctx = tiny_ctx(tmp_path, data_dir=str(tmp_path), entries={"teacher": a, "student": b})
    trained = []

    def fake_train(cfg, mining):
        trained.append(cfg)
        Path(cfg.output).mkdir(parents=True, exist_ok=True)
        (Path(cfg.output) / "train_result.json").write_text("{}")

    monkeypatch.setattr(reproduce.trainer, "train", fake_train)
    folder_a = reproduce.train_folder(a, ctx)
    assert folder_a.parent == tmp_path / "cache" / "reproductions" / "train" and folder_a.name.startswith("teacher-")
    assert reproduce.ensure_trained(b, ctx) == reproduce.train_folder(b, ctx)
    assert [c.output for c in trained] == [str(folder_a), str(reproduce.train_folder(b, ctx))]  # the teacher first
    assert trained[1].teacher == str(folder_a) and trained[0].resume and trained[0].data_dir == str(tmp_path)
    reproduce.ensure_trained(b, ctx)
    assert len(trained) == 2  # complete folders are reused
    same = dataclass_replace_train(a, save_steps=7)  # a setting that never changes the weights: the same folder
    other = dataclass_replace_train(a, lr=5e-5)
    assert reproduce.train_folder(same, ctx) == folder_a and reproduce.train_folder(other, ctx) != folder_a
    ctx_no_data = tiny_ctx(tmp_path, data_dir=None, entries=ctx.entries)
    assert reproduce.missing_train_inputs(a, ctx_no_data) is None  # trained already: its inputs are not needed
    fresh = dataclass_replace_train(a, lr=1e-4, train_data="nowhere-data")
    assert reproduce.missing_train_inputs(fresh, ctx_no_data).startswith("data not here: nowhere-data")


def dataclass_replace_train(entry: Entry, **settings) -> Entry:
    return replace(entry, train=TrainStep({**entry.train.settings, **settings}))


# ---------------------------------------------------------------- the cheap rows on the real data


@pytest.mark.slow
def test_cheap_rows_reproduce_on_the_shared_data(data_dir, tmp_path):
    rows = reproduce.reproduce("", Context(out=tmp_path / "out", data_dir=str(data_dir), cache_dir=str(tmp_path / "cache")), max_cost="cheap")
    cheap = [r for r in rows if r.cost == "cheap" and r.status != "n/a"]
    assert len(cheap) >= 5 and all(r.status == "pass" for r in cheap), matrix.to_markdown(cheap)
