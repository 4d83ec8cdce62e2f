"""Long-document retrieval suites, generated deterministically, plus loaders for MLDR and LongEmbed folders.

Generated suites (written at run time as BEIR folders in the cache, never committed):

* ``passkey-<L>`` (LongEmbed-style, Zhu et al. 2024): each document is ``L`` tokens of repeated
  filler with one sentence "The pass key for <name> is <key>. ..." at a random depth; the query asks
  for that person's pass key. Every document has the same filler, so only the needle tells them apart.
* ``needle-<L>``: a varied generated haystack of ``L`` tokens with one fact "The best thing to do in
  <city> is <activity>."; the query asks about that city.
* ``concat-<L>``: documents of about ``L`` tokens made by concatenating SciFact abstracts read from
  the data dir; a query is relevant to a long document when one of its relevant abstracts is inside.

``L`` counts tokens of the document text under the reference tokenizer (bert-base-uncased WordPiece,
the offline MiniLM's), without special tokens. A 512-token model that truncates sees only the start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from encoders.loading import resolve_model
from retrieval.beir import load_beir, write_beir_folder
from retrieval.sources import resolve

LENGTHS = (256, 512, 1024, 2048, 4096, 8192)
CONCAT_LENGTHS = (2048, 4096, 8192)
GENERATOR_VERSION = 1  # bump when generated text changes, so cached folders are rebuilt

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NAMES = ["Alice", "Bob", "Carmen", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Leila", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Stefan", "Tariq", "Ursula", "Viktor", "Wanda", "Xavier", "Yusuf", "Zelda", "Amara", "Bruno", "Chloe", "Diego", "Elena", "Felix", "Gwen", "Hassan", "Ivy", "Jasper", "Kira", "Lars", "Mina", "Nico", "Olga", "Pablo", "Rhea", "Sven", "Tess", "Umar", "Vera", "Wes", "Yara", "Zane"]
CITIES = ["Lisbon", "Kyoto", "Nairobi", "Quito", "Oslo", "Hanoi", "Tbilisi", "Valparaiso", "Marrakesh", "Tallinn", "Cusco", "Bergen", "Zanzibar", "Ljubljana", "Hobart", "Porto", "Bruges", "Cartagena", "Luang Prabang", "Granada", "Salzburg", "Sapporo", "Tromso", "Valletta", "Yerevan", "Zagreb", "Antigua", "Bukhara", "Chefchaouen", "Dubrovnik", "Essaouira", "Fez", "Galway", "Hoi An", "Isfahan", "Jaipur", "Kotor", "Leon", "Mostar", "Nafplio"]
ACTIVITIES = ["eating grilled sardines by the harbour", "walking through the bamboo forest at dawn", "watching giraffes from the national park", "riding the cable car to the volcano", "swimming in the fjord at midnight", "drinking egg coffee in the old quarter", "bathing in the sulphur baths", "climbing the painted hillside stairways", "haggling for lanterns in the souk", "skating on the frozen bay", "hiking to the ruined temple", "sailing between the islands", "diving with manta rays", "listening to jazz in a cellar bar", "cycling along the canals", "tasting chocolate in a tiny workshop", "watching flamenco in a cave", "sledding down the old castle hill", "taking a boat to the salt caves", "reading in the seventeenth century library"]
HAYSTACK_SUBJECTS = ["the committee", "a farmer", "the old river", "our neighbour", "the orchestra", "a young engineer", "the village council", "the weather", "a wandering poet", "the museum"]
HAYSTACK_VERBS = ["considered", "remembered", "described", "questioned", "admired", "ignored", "painted", "measured", "celebrated", "postponed"]
HAYSTACK_OBJECTS = ["the long winter", "an unfinished bridge", "the price of bread", "a forgotten letter", "the northern hills", "the quiet harbour", "a broken clock", "the summer festival", "the new railway", "an empty theatre"]
HAYSTACK_TAILS = ["for many years", "with great care", "before the storm", "without a word", "in the evening", "as expected", "once again", "after the meeting", "during the fair", "at first light"]


@dataclass(frozen=True)
class LongDocSpec:
    suite: str  # passkey | needle | concat
    length: int  # target document length in reference tokens
    n_docs: int = 30  # passkey/needle: documents (= queries) per length
    n_queries: int = 100  # concat: SciFact test queries used
    n_abstracts: int = 600  # concat: abstracts packed (the queries' relevant ones plus distractors)
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.suite}-{self.length}"


def parse_name(name: str) -> LongDocSpec | None:
    """``passkey-1024`` -> its spec; None if ``name`` is not a generated suite."""
    suite, _, length = name.partition("-")
    if suite in ("passkey", "needle", "concat") and length.isdigit():
        return LongDocSpec(suite, int(length))
    return None


def default_datasets() -> list[str]:
    return [f"passkey-{n}" for n in LENGTHS] + [f"needle-{n}" for n in LENGTHS] + [f"concat-{n}" for n in CONCAT_LENGTHS]


def reference_tokenizer():
    from transformers import AutoTokenizer  # lazy: only generating a suite needs a tokenizer

    tok = AutoTokenizer.from_pretrained(str(resolve_model("minilm").path))
    tok.model_max_length = 1 << 30  # only counts tokens here; no model runs on them
    return tok


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def _fill(sentences: list[str], sentence_tokens: list[int], target: int, rng: random.Random, *, cycle: bool) -> list[str]:
    """Pick sentences (in order if ``cycle``, else at random) until their token count reaches ``target``."""
    out, total, i = [], 0, 0
    while total < target:
        j = i % len(sentences) if cycle else rng.randrange(len(sentences))
        if total + sentence_tokens[j] > target and out:
            break
        out.append(sentences[j])
        total += sentence_tokens[j]
        i += 1
    return out


def _needle_doc(needle: str, filler_sents: list[str], filler_tokens: list[int], length: int, tokenizer, rng: random.Random, *, cycle: bool) -> tuple[str, float]:
    """A document of ~``length`` tokens: filler with ``needle`` inserted at a random sentence boundary."""
    budget = max(0, length - count_tokens(tokenizer, needle))
    hay = _fill(filler_sents, filler_tokens, budget, rng, cycle=cycle)
    pos = rng.randint(0, len(hay))
    parts = hay[:pos] + [needle] + hay[pos:]
    return " ".join(parts), pos / max(1, len(hay))


def generate_synthetic(spec: LongDocSpec, tokenizer) -> tuple[dict, dict, dict, dict]:
    """(corpus, queries, qrels, needle depth per doc) for a passkey or needle suite."""
    rng = random.Random(f"{spec.suite}-{spec.length}-{spec.seed}")
    if spec.suite == "passkey":
        sents = [s.strip() + "." for s in FILLER.split(".") if s.strip()]
        subjects = NAMES
    else:
        sents = [f"{s[0].upper()}{s[1:]} {v} {o} {t}." for s in HAYSTACK_SUBJECTS for v in HAYSTACK_VERBS for o in HAYSTACK_OBJECTS[:3] for t in HAYSTACK_TAILS[:2]]
        subjects = CITIES
    sent_tokens = [count_tokens(tokenizer, s) for s in sents]
    corpus, queries, qrels, depth = {}, {}, {}, {}
    n = min(spec.n_docs, len(subjects))
    for i, who in enumerate(rng.sample(subjects, n)):
        if spec.suite == "passkey":
            key = rng.randint(10000, 99999)
            needle = f"The pass key for {who} is {key}. Remember it. {key} is the pass key for {who}."
            query = f"What is the pass key for {who}?"
        else:
            act = ACTIVITIES[rng.randrange(len(ACTIVITIES))]
            needle = f"The best thing to do in {who} is {act}."
            query = f"What is the best thing to do in {who}?"
        did, qid = f"{spec.suite}{spec.length}-d{i}", f"{spec.suite}{spec.length}-q{i}"
        text, depth[did] = _needle_doc(needle, sents, sent_tokens, spec.length, tokenizer, rng, cycle=spec.suite == "passkey")
        corpus[did] = {"title": "", "text": text}
        queries[qid] = query
        qrels[qid] = {did: 1}
    return corpus, queries, qrels, depth


def generate_concat(spec: LongDocSpec, source_dir: Path, tokenizer) -> tuple[dict, dict, dict, dict]:
    """Long documents of ~``spec.length`` tokens made of whole SciFact abstracts (title + text)."""
    src = load_beir(source_dir, "test")
    rng = random.Random(f"concat-{spec.length}-{spec.seed}")
    qids = sorted(src.qrels)
    qids = rng.sample(qids, min(spec.n_queries, len(qids)))
    needed = sorted({d for q in qids for d in src.qrels[q] if d in src.corpus})
    others = sorted(set(src.corpus) - set(needed))
    chosen = needed + rng.sample(others, max(0, min(len(others), spec.n_abstracts - len(needed))))
    rng.shuffle(chosen)
    corpus, where, members = {}, {}, {}
    cur, cur_tokens = [], 0
    for d in chosen:
        title = src.corpus[d]["title"].strip()
        sep = " " if title.endswith((".", "?", "!")) else ". "
        text = (title + sep + src.corpus[d]["text"]).strip() if title else src.corpus[d]["text"].strip()
        n = count_tokens(tokenizer, text)
        if cur and cur_tokens + n > spec.length:
            did = f"concat{spec.length}-d{len(corpus)}"
            corpus[did] = {"title": "", "text": "\n\n".join(t for _, t in cur)}
            members[did] = [a for a, _ in cur]
            cur, cur_tokens = [], 0
        cur.append((d, text))
        cur_tokens += n
    if cur and corpus and cur_tokens < spec.length // 2:  # a short remainder joins the last document
        last = next(reversed(corpus))
        corpus[last]["text"] += "\n\n" + "\n\n".join(t for _, t in cur)
        members[last] += [a for a, _ in cur]
    elif cur:
        did = f"concat{spec.length}-d{len(corpus)}"
        corpus[did] = {"title": "", "text": "\n\n".join(t for _, t in cur)}
        members[did] = [a for a, _ in cur]
    for did, abstracts in members.items():
        for a in abstracts:
            where[a] = did
    queries, qrels = {}, {}
    for q in qids:
        rel = {}
        for d, score in src.qrels[q].items():
            if score > 0 and d in where:
                rel[where[d]] = max(rel.get(where[d], 0), score)
        if rel:
            queries[q] = src.queries[q]
            qrels[q] = rel
    return corpus, queries, qrels, {did: len(m) for did, m in members.items()}


def materialize(name: str, cache_root: Path, data_dir: str | None = None, tokenizer=None) -> Path:
    """The BEIR folder of a generated suite, generating it once (cached by spec and generator version)."""
    spec = parse_name(name)
    if spec is None:
        raise ValueError(f"{name!r} is not a generated long-document suite ({', '.join(default_datasets())})")
    folder = Path(cache_root) / "generated" / f"{spec.name}-v{GENERATOR_VERSION}-n{spec.n_docs}-q{spec.n_queries}-a{spec.n_abstracts}-s{spec.seed}"
    if (folder / "generator.json").is_file():
        return folder
    tokenizer = tokenizer or reference_tokenizer()
    if spec.suite == "concat":
        source = resolve("scifact", data_dir)
        corpus, queries, qrels, info = generate_concat(spec, source, tokenizer)
        meta = {"spec": spec.__dict__, "source": str(source), "abstracts_per_doc": info}
    else:
        corpus, queries, qrels, info = generate_synthetic(spec, tokenizer)
        meta = {"spec": spec.__dict__, "needle_depth": info}
    meta["tokens"] = {d: count_tokens(tokenizer, c["text"]) for d, c in corpus.items()}
    return write_beir_folder(folder, corpus, queries, qrels, meta)
