"""The interactive leaderboard page: ``leaderboard.html`` (default layout) and ``paper.html`` (Table 1 layout).

One self-contained file: the tables are rendered here as plain HTML (readable without scripts), and
one inline script, with the data as inline JSON, makes them interactive. No server, no CDN, no
request of any kind: it works from ``file://``.

* Sort any table by a click on a column head (again: reversed); missing values last.
* Filter rows by model name and encoder, columns by dataset.
* Each score with per-query scores draws its 95% bootstrap CI as a whisker; a tooltip gives the CI,
  the comparison with the baseline (▲ / ▼) and the rank interval and tier (★ = best tier).
* Click a score: its provenance (settings, dataset checksum, model revision, git commit, library
  versions, timings) opens beside the tables.
* Pick two rows and a dataset: their per-query differences of the table metric, sorted, are drawn
  (SVG), with the mean difference.
"""

from __future__ import annotations

import html
import json

from benchmarks.cells import EVAL_SPLIT
from benchmarks.marks import Marks, legend, marker, marks_for, per_query_scores, ptext, table1_key, task_marks
from benchmarks.ranks import Standing
from benchmarks.results import Result
from benchmarks.significance import bootstrap_ci
from benchmarks.spec import CompareConfig
from benchmarks.standings import Ranks, rank_text, ranks_legend, table1_ranks, table_ranks
from benchmarks.table import PAPER_COLUMNS, by_task, paper_cells, paper_table, picked, split_tables

PROVENANCE_KEYS = ("settings", "dataset_checksum", "dataset_path", "model_spec", "model_path", "model_revision", "git_commit", "code", "libraries",
                   "machine", "dtype", "dtype_choice", "index", "faiss_factory", "search", "tied_queries", "empty_queries", "queries_without_text")


class Page:
    """Collects the results the page's cells refer to (ids in order of first use) and their per-query scores."""

    def __init__(self, metric: str, config: CompareConfig | None):
        self.metric, self.config, self.ids, self.results, self.per_query = metric, config or CompareConfig(), {}, {}, {}

    def ref(self, r: Result) -> str:
        key = (r.model, r.encoder, r.dataset, r.split, r.config_key, r.created_at)
        if key not in self.ids:
            rid = f"r{len(self.ids)}"
            self.ids[key] = rid
            prov = {k: r.provenance[k] for k in PROVENANCE_KEYS if k in r.provenance}
            self.results[rid] = {"model": r.model, "encoder": r.encoder, "dataset": r.dataset, "split": r.split, "task": r.task, "config_key": r.config_key,
                                 "created_at": r.created_at, "num_queries": r.num_queries, "num_docs": r.num_docs, "metrics": r.metrics,
                                 "provenance": prov, "timings": r.timings}
            s = per_query_scores(r, self.metric)
            if s is not None:
                self.per_query[rid] = {"qids": list(s), "v": list(s.values())}
        return self.ids[key]


def _fmt(v: float, scale: float, digits: int) -> str:
    return f"{scale * v:.{digits}f}"


def _rank_tip(st: Standing) -> str:
    return (f"rank {st.rank} (95% bootstrap interval {st.interval[0]}–{st.interval[1]}); tier {st.tier}"
            + (": not significantly below the best" if st.tier == 1 else f": below tier {st.tier - 1}") + f" (adjusted p vs the tier's best {ptext(st.p_vs_tier_best)})")


def _td(page: Page, results: list[Result], value: float | None, *, scale: float, digits: int, col: str, marks: Marks | None = None, key=None,
        standing: Standing | None = None, extra: str = "") -> str:
    """One score cell: value, marker, CI whisker and their tooltips; ``data-v`` sorts it, ``data-refs`` opens its provenance."""
    if value is None:
        return f"<td data-col='{html.escape(col)}' class='empty'>—</td>"
    refs = " ".join(page.ref(r) for r in results)
    tips, inner = [], html.escape(_fmt(value, scale, digits) + extra)
    ci = marks.ci.get(key) if marks is not None and key is not None else None
    if ci is None and len(results) == 1:  # a score of one result: its own bootstrap CI, baseline or not
        s = per_query_scores(results[0], page.metric)
        ci = bootstrap_ci(list(s.values()), n=page.config.bootstrap, seed=page.config.stats_seed) if s is not None and len(s) > 1 else None
    if ci is not None:
        tips.append(f"95% CI [{_fmt(ci[0], scale, digits)}, {_fmt(ci[1], scale, digits)}]")
    c = marks.comparisons.get(key) if marks is not None and key is not None else None
    mark = marker(c)
    if c is not None:
        tip = (f"vs baseline {scale * c.diff:+.{digits}f} [{scale * c.diff_ci[0]:+.{digits}f}, {scale * c.diff_ci[1]:+.{digits}f}], "
               f"p {ptext(c.p)}, adjusted {ptext(c.p_adjusted)}: " + ("significant" if c.significant else "not significant"))
        tips.append(tip)
        if mark:
            inner += f"<sup class='mark' title='{html.escape(tip)}'>{mark}</sup>"
    if standing is not None:
        inner += f" <span class='rank{' tier1' if standing.tier == 1 else ''}' title='{html.escape(_rank_tip(standing))}'>{html.escape(rank_text(standing))}</span>"
    if ci is not None and page.config.ci:
        inner += f"<span class='ci' data-lo='{ci[0]!r}' data-hi='{ci[1]!r}'></span>"
    title = f" title='{html.escape('; '.join(tips))}'" if tips else ""
    return f"<td data-col='{html.escape(col)}' data-v='{value!r}' data-refs='{refs}'{title}>{inner}</td>"


def _table(tid: str, title: str, columns: list[str], body: list[str], notes: list[str], *, first: list[str], titles: dict[str, str] | None = None) -> str:
    titles = titles or {}
    head = "".join(f"<th data-key='{html.escape(k)}'>{html.escape(k)}</th>" for k in first)
    head += "".join(f"<th data-key='{html.escape(c)}' data-col='{html.escape(c)}'" + (f" title='{html.escape(titles[c])}'" if c in titles else "") + f">{html.escape(c)}</th>"
                    for c in columns)
    shown, rest = [n for n in notes if not n.startswith("No ")], [n for n in notes if n.startswith("No ")]  # what lacks a CI, marker or rank: folded
    note = ("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in shown) + "</ul>" if shown else "") + (
        f"<details class='notes'><summary>{len(rest)} note{'s' if len(rest) > 1 else ''} on cells without a CI, marker or rank</summary><ul class='notes'>"
        + "".join(f"<li>{html.escape(n)}</li>" for n in rest) + "</ul></details>" if rest else "")
    return (f"<section class='board' id='{tid}'><h2>{html.escape(title)}</h2>\n<table data-table='{tid}'>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>{''.join(body)}</tbody>\n</table>{note}</section>")


def _row(label: str, encoder: str, cells: list[str]) -> str:
    return (f"<tr data-model='{html.escape(label)}' data-encoder='{html.escape(encoder)}'><td class='label' data-col='model' data-v='{html.escape(label)}'>{html.escape(label)}</td>"
            f"<td data-col='encoder' data-v='{html.escape(encoder)}'>{html.escape(encoder)}</td>{''.join(cells)}</tr>")


def pivot_sections(page: Page, results: list[Result], metric: str, marks: Marks | None, ranks: Ranks, everything: list[Result] | None, *,
                   scale: float, digits: int, title: str, tid: str) -> list[str]:
    cols, rows, cell = picked(results, metric, everything)
    out = []
    for n, (split, scols) in enumerate(split_tables(cols)):
        mean_ranks = ranks.means.get(split)
        body = []
        for row in rows:
            tds = [_td(page, [cell[(*row, c)]] if (*row, c) in cell else [], cell[(*row, c)].metrics[metric] if (*row, c) in cell else None, scale=scale,
                       digits=digits, col=c, marks=marks, key=(*row, c), standing=ranks.columns.get(c, {}).get(row)) for c in scols]
            if all("class='empty'" in t for t in tds):
                continue
            if len(scols) > 1:
                got = [cell[(*row, c)] for c in scols if (*row, c) in cell]
                mean = sum(r.metrics[metric] for r in got) / len(got) if len(got) == len(scols) else None
                tds.append(_td(page, got, mean, scale=scale, digits=digits, col="mean"))
            if mean_ranks is not None:  # its own column: the mean it ranks may be over fewer datasets than the mean column's
                st = mean_ranks.standings.get(row)
                tds.append(f"<td data-col='rank' data-v='{st.rank}' title='{html.escape(_rank_tip(st))}'><span class='rank{' tier1' if st.tier == 1 else ''}'>"
                           f"{html.escape(rank_text(st))}</span></td>" if st is not None else "<td data-col='rank' class='empty'>—</td>")
            body.append(_row(row[0], row[1], tds))
        notes = (legend(marks, scale=scale) if marks is not None else []) + (ranks_legend(ranks) if ranks.any() else [])
        t = title + ("" if split == EVAL_SPLIT else f", split {split}")
        heads = {"mean": f"mean over the {len(scols)} datasets of this table (a row with all of them)"} | (
            {"rank": f"rank by the mean over {', '.join(mean_ranks.columns)} (95% bootstrap interval; ★ best tier)"} if mean_ranks else {})
        out.append(_table(f"{tid}-{n}", t, scols + (["mean"] if len(scols) > 1 else []) + (["rank"] if mean_ranks else []), body, notes,
                          first=["model", "encoder"], titles=heads))
    return out


def leaderboard_html(results: list[Result], compare: CompareConfig | None = None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> str:
    """``leaderboard.html``: the default layout's pivot per split, interactive (module docstring)."""
    page = Page(metric, compare)
    marks = marks_for(results, compare, metric, everything)
    ranks = table_ranks(results, compare, metric, everything)
    sections = pivot_sections(page, results, metric, marks, ranks, everything, scale=1, digits=4, title=metric, tid="t") if results else ["<p>No results.</p>"]
    return _document(page, "Leaderboard", sections)


def paper_html(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None, everything: list[Result] | None = None) -> str:
    """``paper.html``: Table 1 (x 100, test split) and one table per task, interactive (module docstring)."""
    everything = everything if everything is not None else results
    page = Page(metric, compare)
    marks = task_marks(results, compare, metric, everything)
    models, values, used, partial = paper_table(results, metric, everything)
    _, cells, _ = paper_cells(results, metric, everything)
    t1 = table1_ranks(results, compare, metric, everything)
    body = []
    for m, row, part in zip(models, values, partial):
        tds = []
        for c, v, p in zip(PAPER_COLUMNS, row, part):
            got = list(cells.get((m, c), {}).values())
            mk, key = table1_key(cells.get((m, c), {}), marks)
            tds.append(_td(page, got, v, scale=100, digits=1, col=c, marks=mk, key=key, standing=t1[c].standings.get((m, "")) if c in t1 else None, extra="*" if p else ""))
        encoders = sorted({r.encoder for c in PAPER_COLUMNS for r in cells.get((m, c), {}).values()})
        body.append(_row(m, "/".join(encoders), tds))
    notes = [f"{c}: mean over {', '.join(ds)}" for c, ds in used.items() if ds] + (["* the row has only some of the column's datasets: its mean is not comparable."] if any(any(p) for p in partial) else [])
    notes += ["BM25 rows fill the single-vector (DPR) columns as the lexical baseline.", f"Only {EVAL_SPLIT}-split results feed Table 1."]
    notes += [f"rank {c}: over {', '.join(t1[c].columns)}" for c in PAPER_COLUMNS if c in t1] + (ranks_legend(Ranks(compare or CompareConfig(), metric, {}, {}, ())) if t1 else [])
    sections = [_table("t1", f"Table 1 layout ({metric} x 100)", PAPER_COLUMNS, body, notes, first=["model", "encoder"])]
    for i, (task, rs) in enumerate(by_task(results).items()):
        sections += pivot_sections(page, rs, metric, marks.get(task), table_ranks(rs, compare, metric, everything), everything, scale=100, digits=1,
                                   title=f"{task} ({metric} x 100)", tid=f"task{i}")
    return _document(page, "Leaderboard (ModernBERT Table 1 layout)", sections)


def _document(page: Page, title: str, sections: list[str]) -> str:
    data = json.dumps({"metric": page.metric, "results": page.results, "perQuery": page.per_query}, ensure_ascii=False, sort_keys=True)
    data = data.replace("</", "<\\/")  # never close the script element from inside the JSON
    controls = ("<div id='controls'><label>model <input id='filter-model' type='search' placeholder='filter by name'></label> "
                "<label>encoder <select id='filter-encoder'><option value=''>all</option></select></label> "
                "<div id='filter-datasets'></div></div>")
    compare = ("<section id='compare'><h2>Per-query differences</h2><label>row A <select id='cmp-a'></select></label> "
               "<label>row B <select id='cmp-b'></select></label> <label>dataset <select id='cmp-col'></select></label> "
               "<button id='cmp-go' type='button'>draw</button><div id='cmp-out'></div></section>")
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{controls}\n<main><div id='tables'>\n"
            + "\n".join(sections) + f"\n</div><aside id='prov'><h2>Provenance</h2><p class='hint'>Click a score to see how it was computed.</p><div id='prov-body'></div></aside></main>\n"
            f"{compare}\n<script type='application/json' id='data'>{data}</script>\n<script>{JS}</script>\n</body></html>\n")


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1em 0 .4em}
#controls{display:flex;flex-wrap:wrap;gap:.8em;align-items:center;margin-bottom:.6em}
#filter-datasets{display:flex;flex-wrap:wrap;gap:.2em .7em;flex-basis:100%}#filter-datasets label{white-space:nowrap;font-size:.9em}
main{display:flex;gap:1.2em;align-items:flex-start}#tables{flex:1;min-width:0;overflow-x:auto}
#prov{width:24em;flex:none;position:sticky;top:.5em;max-height:95vh;overflow:auto;border:1px solid #ddd;padding:.4em .8em;font-size:.85em;background:#fafafa}
#prov table{border-collapse:collapse}#prov td{border:none;padding:1px 4px;text-align:left;vertical-align:top;word-break:break-all}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;user-select:none}th[data-key=model],th[data-key=encoder]{text-align:left}th.sorted-asc::after{content:' ▲'}th.sorted-desc::after{content:' ▼'}
td.label,td[data-col=encoder]{text-align:left}td[data-refs]{cursor:pointer}td.selected{outline:2px solid #2a6fdb}
td.empty{color:#999}.mark{color:#b03;margin-left:1px}.rank{font-size:.8em;color:#555}.rank.tier1{color:#0a6d2c;font-weight:600}
.ci{display:block;height:6px;margin-top:2px;position:relative}.ci svg{display:block}
ul.notes{font-size:.8em;color:#444;max-width:70em;white-space:normal}details.notes{font-size:.8em;color:#555;max-width:70em}.hidden{display:none}
#cmp-out svg{border:1px solid #ddd;background:#fff}#compare{margin-top:1em}
"""

JS = r"""
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('data').textContent);
  const tables = Array.from(document.querySelectorAll('table[data-table]'));
  const svgNS = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => { const e = document.createElement(tag); Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v)); if (text !== undefined) e.textContent = text; return e; };
  const sv = (tag, attrs) => { const e = document.createElementNS(svgNS, tag); Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v)); return e; };

  // CI whiskers: each column's scale spans its lowest CI bound to its highest.
  tables.forEach(t => {
    const bounds = {};
    t.querySelectorAll('td .ci').forEach(ci => { const c = ci.parentElement.dataset.col; const lo = +ci.dataset.lo, hi = +ci.dataset.hi; const b = bounds[c] || [lo, hi]; bounds[c] = [Math.min(b[0], lo), Math.max(b[1], hi)]; });
    t.querySelectorAll('td .ci').forEach(ci => {
      const td = ci.parentElement, [a, b] = bounds[td.dataset.col], w = 60, span = (b - a) || 1, x = v => 1 + (w - 2) * (v - a) / span;
      const s = sv('svg', {width: w, height: 6, 'aria-hidden': 'true'});
      s.appendChild(sv('line', {x1: x(+ci.dataset.lo), x2: x(+ci.dataset.hi), y1: 3, y2: 3, stroke: '#888', 'stroke-width': 1}));
      s.appendChild(sv('circle', {cx: x(+td.dataset.v), cy: 3, r: 2, fill: '#2a6fdb'}));
      ci.appendChild(s);
    });
  });

  // Sorting: a click on a head sorts its table's rows by that column; again, the other way. Missing values last.
  tables.forEach(t => t.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => {
    const desc = !th.classList.contains('sorted-desc');
    t.querySelectorAll('th').forEach(h => h.classList.remove('sorted-asc', 'sorted-desc'));
    th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
    const body = t.tBodies[0], rows = Array.from(body.rows);
    const val = r => { const c = r.cells[i]; return c && c.dataset.v !== undefined ? c.dataset.v : null; };
    rows.sort((a, b) => {
      const x = val(a), y = val(b);
      if (x === null || y === null) return (x === null) - (y === null);
      const nx = parseFloat(x), ny = parseFloat(y), num = !isNaN(nx) && !isNaN(ny) && /^[-0-9.e+]+$/i.test(x) && /^[-0-9.e+]+$/i.test(y);
      const d = num ? nx - ny : String(x).localeCompare(String(y));
      return desc ? -d : d;
    });
    rows.forEach(r => body.appendChild(r));
  })));

  // Filters: rows by name and encoder, columns by dataset.
  const encoders = new Set(), columns = new Set();
  tables.forEach(t => { t.querySelectorAll('tbody tr').forEach(r => encoders.add(r.dataset.encoder)); t.querySelectorAll('th[data-col]').forEach(h => { if (h.dataset.col !== 'mean' && h.dataset.col !== 'rank') columns.add(h.dataset.col); }); });
  const enc = document.getElementById('filter-encoder'), name = document.getElementById('filter-model'), boxes = document.getElementById('filter-datasets');
  Array.from(encoders).sort().forEach(e => enc.appendChild(el('option', {value: e}, e)));
  Array.from(columns).forEach(c => { const l = el('label'); const b = el('input', {type: 'checkbox', class: 'filter-dataset', value: c}); b.checked = true; l.appendChild(b); l.appendChild(document.createTextNode(' ' + c)); boxes.appendChild(l); });
  const apply = () => {
    const q = name.value.trim().toLowerCase(), e = enc.value;
    const hidden = new Set(Array.from(document.querySelectorAll('.filter-dataset')).filter(b => !b.checked).map(b => b.value));
    tables.forEach(t => {
      t.querySelectorAll('tbody tr').forEach(r => r.classList.toggle('hidden', (q && !r.dataset.model.toLowerCase().includes(q)) || (e && r.dataset.encoder !== e)));
      t.querySelectorAll('[data-col]').forEach(c => c.classList.toggle('hidden', hidden.has(c.dataset.col)));
    });
  };
  name.addEventListener('input', apply); enc.addEventListener('change', apply); boxes.addEventListener('change', apply);

  // Provenance: a click on a score lists what computed it.
  const provBody = document.getElementById('prov-body');
  const show = (obj, into) => {
    const tbl = el('table');
    Object.entries(obj).forEach(([k, v]) => {
      const tr = el('tr'); tr.appendChild(el('td', {}, k));
      const td = el('td');
      if (v && typeof v === 'object' && !Array.isArray(v)) show(v, td); else td.textContent = Array.isArray(v) ? v.join(', ') : String(v);
      tr.appendChild(td); tbl.appendChild(tr);
    });
    into.appendChild(tbl);
  };
  document.querySelectorAll('td[data-refs]').forEach(td => td.addEventListener('click', () => {
    document.querySelectorAll('td.selected').forEach(x => x.classList.remove('selected'));
    td.classList.add('selected');
    provBody.textContent = '';
    td.dataset.refs.split(' ').filter(Boolean).forEach(id => {
      const r = data.results[id];
      provBody.appendChild(el('h3', {}, r.model + ' · ' + r.encoder + ' · ' + r.dataset + '/' + r.split));
      show({created_at: r.created_at, config_key: r.config_key, queries: r.num_queries, documents: r.num_docs, metrics: r.metrics, provenance: r.provenance, timings: r.timings}, provBody);
    });
  }));

  // Per-query differences of two rows on one dataset, sorted, as bars.
  const pairs = [];  // {label, encoder, col, ref}
  tables.forEach(t => t.querySelectorAll('tbody tr').forEach(r => r.querySelectorAll('td[data-refs]').forEach(td => {
    const ref = td.dataset.refs; if (ref.includes(' ') || !data.perQuery[ref]) return;
    pairs.push({row: r.dataset.model + ' (' + r.dataset.encoder + ')', col: td.dataset.col, ref: ref});
  })));
  const rowsWith = Array.from(new Set(pairs.map(p => p.row))), colsWith = Array.from(new Set(pairs.map(p => p.col)));
  const ca = document.getElementById('cmp-a'), cb = document.getElementById('cmp-b'), cc = document.getElementById('cmp-col'), out = document.getElementById('cmp-out');
  rowsWith.forEach((r, i) => { ca.appendChild(el('option', {value: r}, r)); cb.appendChild(el('option', {value: r}, r)); });
  if (rowsWith.length > 1) cb.selectedIndex = 1;
  colsWith.forEach(c => cc.appendChild(el('option', {value: c}, c)));
  document.getElementById('cmp-go').addEventListener('click', () => {
    out.textContent = '';
    const find = row => pairs.find(p => p.row === row && p.col === cc.value);
    const a = find(ca.value), b = find(cb.value);
    if (!a || !b) { out.appendChild(el('p', {class: 'msg'}, 'No per-query scores for both rows on ' + cc.value + '.')); return; }
    const pa = data.perQuery[a.ref], pb = data.perQuery[b.ref], byq = {};
    pb.qids.forEach((q, i) => { byq[q] = pb.v[i]; });
    const d = []; pa.qids.forEach((q, i) => { if (q in byq) d.push(pa.v[i] - byq[q]); });
    d.sort((x, y) => x - y);
    if (!d.length) { out.appendChild(el('p', {class: 'msg'}, 'The two rows share no query.')); return; }
    const W = 640, H = 220, m = Math.max(1e-9, ...d.map(Math.abs)), y = v => H / 2 - (H / 2 - 10) * v / m, bw = W / d.length;
    const s = sv('svg', {width: W, height: H, id: 'cmp-svg', role: 'img'});
    s.appendChild(sv('line', {x1: 0, x2: W, y1: y(0), y2: y(0), stroke: '#999'}));
    d.forEach((v, i) => s.appendChild(sv('rect', {class: 'bar', x: i * bw, width: Math.max(bw - 0.5, 0.5), y: Math.min(y(v), y(0)), height: Math.abs(y(v) - y(0)), fill: v >= 0 ? '#2a6fdb' : '#c0392b'})));
    const mean = d.reduce((x, v) => x + v, 0) / d.length;
    out.appendChild(el('p', {}, ca.value + ' minus ' + cb.value + ' on ' + cc.value + ' (' + data.metric + '), ' + d.length + ' queries sorted: mean ' + mean.toFixed(4) +
      ', ' + d.filter(v => v > 0).length + ' better, ' + d.filter(v => v < 0).length + ' worse, ' + d.filter(v => v === 0).length + ' tied.'));
    out.appendChild(s);
  });
})();
"""
