"""Semantic recall: past decisions whose situation resembles the one at hand.

Each agent decision gets a one-line summary (:func:`decision_summary`: the action, its
symbols, the event and its signal, key market facts such as VIX and the symbol's move,
and the first sentence of the reasoning), embedded by an :class:`Embedder` and stored
in ``memory_embeddings`` (migration 0008) as little-endian float32 bytes with the
model's name and dimension; the decision's outcome
(:func:`tradewarden.agent.outcomes.record_outcomes`) is added to the row when known.

Embedding
---------
The default :class:`WordLlamaEmbedder` is WordLlama's ``l2_supercat`` model at 256
dimensions, loaded strictly offline from the files its wheel carries
(``WordLlama.load(..., cache_dir=<the package directory>, disable_download=True)``: the
package keeps its weights under ``weights/`` and its tokenizer under ``tokenizers/``,
the layout the loader expects of a cache directory); it never downloads and fails with
:class:`RecallError` when the files are missing. WordLlama averages token embeddings,
so numbers carry little meaning to it: the text embedded is the summary with the
figures in parentheses left out (:func:`semantic_text`: ``VIX high (27.9)`` embeds as
``VIX high``), and a query's VIX figures are put into the same words
(:func:`normalise_query`: ``VIX above 25`` becomes ``VIX high very high``; the bands
are :data:`tradewarden.agent.outcomes.VIX_BANDS`).

Search
------
Exact cosine similarity over every stored vector of the same model (and deployment,
symbol when asked): numpy on SQLite, and on PostgreSQL too unless the ``vector``
extension (pgvector) is installed in the database and ``memory_embeddings`` has the
column :data:`PGVECTOR_COLUMN` (``vector``; see the schema request): then the search is
``ORDER BY embedding <=> :query`` in SQL (pgvector's cosine distance, exact without an
index), and new rows fill that column as well. Both give the same order.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import select, text, update

from tradewarden.agent import records
from tradewarden.agent.outcomes import VIX_BANDS, outcomes_by_decision, vix_band
from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ledger.store import utcnow_iso

#: The pgvector column of ``memory_embeddings`` used when it exists (PostgreSQL only).
PGVECTOR_COLUMN = "embedding"
#: WordLlama's configuration and dimension used by default.
WORDLLAMA_CONFIG, WORDLLAMA_DIM = "l2_supercat", 256


class RecallError(LedgerError):
    """Signal that semantic recall cannot work: the embedding model cannot be loaded,
    or a stored vector is not what the model gives."""


@runtime_checkable
class Embedder(Protocol):
    """Turn texts into unit vectors.

    Attributes
    ----------
    name : str
        The model's name, stored with each vector (1-64 characters): vectors of
        different names are never compared.
    dim : int
        The vectors' length.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return the texts' embeddings, shape ``(len(texts), dim)``, float32, each row
        of unit length (L2)."""
        ...


class WordLlamaEmbedder:
    """Embed texts with WordLlama, loaded offline from its wheel's files (the default
    :class:`Embedder`).

    Parameters
    ----------
    config : str
        The WordLlama configuration (``l2_supercat``, whose weights the wheel ships).
    dim : int
        Its dimension (256: the wheel's file).

    Raises
    ------
    RecallError
        The model's weights or tokenizer are not in the installed package (nothing is
        downloaded).
    """

    def __init__(self, config: str = WORDLLAMA_CONFIG, dim: int = WORDLLAMA_DIM) -> None:
        from pathlib import Path

        import wordllama
        from wordllama import WordLlama
        here = Path(wordllama.__file__).resolve().parent
        try:
            self._model = WordLlama.load(config, dim=dim, cache_dir=here, disable_download=True)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise RecallError(f"the WordLlama model {config}/{dim} cannot be loaded from "
                              f"{here}: {exc}") from None
        self.name = f"wordllama-{config}-{dim}"
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit-length float32 embeddings, shape ``(len(texts), dim)``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.asarray(self._model.embed(list(texts), norm=False), dtype=np.float32)
        return _unit(vecs)


@functools.lru_cache(maxsize=1)
def default_embedder() -> WordLlamaEmbedder:
    """Return the process's :class:`WordLlamaEmbedder` (loaded once, about 0.5 s)."""
    return WordLlamaEmbedder()


def _unit(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.where(norms > 0, norms, 1.0)).astype(np.float32)


# -- summaries ------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _move_words(move: float) -> str:
    """A signed fraction (0.041 = +4.1 %) in words."""
    size = abs(move)
    if size < 0.01:
        return "flat"
    way = "up" if move > 0 else "down"
    return f"{way} sharply" if size >= 0.03 else way


def _first_sentence(text: Any) -> str:
    text = str(text or "").strip()
    for stop in (". ", "\n"):
        if stop in text:
            text = text.split(stop, 1)[0]
    return text.rstrip(".")


def decision_summary(decision: dict[str, Any]) -> str:
    """Return the one-line summary of an agent decision that recall embeds.

    Parameters
    ----------
    decision : dict
        An ``agent_decisions`` row as :func:`tradewarden.agent.records.agent_decisions`
        returns it (``context`` and ``output`` parsed).

    Returns
    -------
    str
        ``ACTION SYMBOLS on EVENT (signal S). VIX band (level, change since the open).
        SYMBOL up/down [sharply] (move). First sentence of the reasoning.`` Figures
        are in parentheses (left out of the embedded text); a part whose facts are
        missing is left out. The move is the event's ``move`` (a signed fraction,
        ``significant_move``), else the market's ``moves[symbol]`` or ``move``.
    """
    ctx = decision.get("context") or {}
    out = decision.get("output") or {}
    event = ctx.get("event") or {}
    payload = event.get("payload") or {}
    market = ctx.get("market") or {}
    symbol = decision.get("symbol") or event.get("symbol")
    targets = list(out.get("target_symbols") or ([symbol] if symbol else []))
    action = decision.get("action") or out.get("action") or ""
    head = f"{action} {' '.join(targets)}".strip()
    head += f" on {decision.get('event_kind') or event.get('kind')}"
    if payload.get("signal"):
        head += f" (signal {payload['signal']})"
    parts = [head]
    vix = _num(market.get("vix"))
    if vix is not None:
        figures = f"{vix:g}"
        vopen = _num(market.get("vix_open"))
        if vopen:
            figures += f", {(vix / vopen - 1) * 100:+.0f}% since the open"
        parts.append(f"VIX {vix_band(vix)} ({figures})")
    move = _num(payload.get("move"))
    if move is None:
        moves = market.get("moves")
        move = _num(moves.get(symbol)) if isinstance(moves, dict) and symbol else None
    if move is None:
        move = _num(market.get("move"))
    if move is not None and symbol:
        parts.append(f"{symbol} {_move_words(move)} ({move * 100:+.1f}%)")
    first = _first_sentence(out.get("reasoning"))
    if first:
        parts.append(first)
    return ". ".join(parts) + "."


def event_query(kind: str | None, symbol: str | None, payload: dict[str, Any] | None = None,
                market: dict[str, Any] | None = None) -> str:
    """Return the recall query for a situation about to be decided: a summary as
    :func:`decision_summary` writes it, without an action or reasoning (``NVDA on
    entry_signal (signal sell_put). VIX high (27.9). NVDA down sharply (-4.1%).``).

    Parameters
    ----------
    kind : str or None
        The event's kind (``entry_signal``, ``stop_approaching``, ...).
    symbol : str or None
    payload : dict, optional
        The event's payload (``signal``, ``move`` as a signed fraction).
    market : dict, optional
        The market context (``vix``, ``vix_open``, ``moves``).
    """
    row = {"action": "", "symbol": symbol, "event_kind": kind or "decision",
           "context": {"event": {"payload": dict(payload or {})}, "market": dict(market or {})},
           "output": {}}
    return decision_summary(row).strip()


_PARENS = re.compile(r"\s*\([^()]*\)")
_VIX_FIGURE = re.compile(r"\bVIX\s*(?:is\s+|was\s+|level\s+)?"
                         r"(above|over|>=|>|below|under|<=|<|at|of|near|around|=)?\s*"
                         r"(\d+(?:\.\d+)?)", re.IGNORECASE)


def semantic_text(summary: str) -> str:
    """Return the text embedded for a summary: the figures in parentheses left out."""
    return re.sub(r"\s+", " ", _PARENS.sub("", summary)).strip()


def normalise_query(query: str) -> str:
    """Return a query with its VIX figures in the summaries' words.

    A level (``VIX at 28``, ``VIX 28``) becomes its band (``VIX high``); ``above``,
    ``over``, ``>`` (``>=``) a level become every band from the level's up (``VIX above
    25``: ``VIX high very high``), ``below``, ``under``, ``<`` every band up to it
    (``VIX below 20``: ``VIX calm``). Bands: :data:`VIX_BANDS` (a bound itself belongs
    to the band above it).
    """
    names = [n for _b, n in reversed(VIX_BANDS)]           # lowest first

    def band(mo: re.Match[str]) -> str:
        op, level = (mo.group(1) or "").lower(), float(mo.group(2))
        if op in ("below", "under", "<", "<="):
            bounds = [b for b, _n in VIX_BANDS if math.isfinite(b)]
            top = vix_band(level - 1e-9 if level in bounds else level)
            chosen = names[:names.index(top) + 1]
        elif op in ("above", "over", ">", ">="):
            chosen = names[names.index(vix_band(level)):]
        else:
            chosen = [vix_band(level)]
        return "VIX " + " ".join(chosen)

    return semantic_text(_VIX_FIGURE.sub(band, query))


# -- storage --------------------------------------------------------------------------------
def _pack(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def _unpack(blob: bytes, dim: int) -> np.ndarray:
    vec = np.frombuffer(blob, dtype="<f4")
    if vec.shape[0] != dim:
        raise RecallError(f"a stored vector has {vec.shape[0]} values, not {dim}")
    return vec


def _vector_literal(vec: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in vec) + "]"


class SemanticRecall:
    """Embed decisions and find the past ones closest to a query.

    Parameters
    ----------
    ledger : Ledger
    embedder : Embedder, optional
        Default :func:`default_embedder` (WordLlama, offline).
    pgvector : bool, optional
        ``None`` (default): search with pgvector when the database has it (see
        :meth:`uses_pgvector`); ``False``: always numpy over the stored bytes.

    Raises
    ------
    RecallError
        The default model cannot be loaded.
    """

    def __init__(self, ledger: Ledger, embedder: Embedder | None = None, *,
                 pgvector: bool | None = None) -> None:
        self.ledger = ledger
        self.embedder = embedder if embedder is not None else default_embedder()
        self._pgvector: bool | None = False if pgvector is False else None

    # -- backend --------------------------------------------------------------------------
    def uses_pgvector(self) -> bool:
        """Return whether the search runs in SQL with pgvector: a PostgreSQL ledger whose
        database has the ``vector`` extension and ``memory_embeddings.embedding``.

        Raises
        ------
        LedgerError
            If the ledger cannot be read.
        """
        if self._pgvector is None:
            def work(conn: Any) -> bool:
                if conn.dialect.name != "postgresql":
                    return False
                ext = conn.execute(text("select 1 from pg_extension where extname = 'vector'"))
                if ext.first() is None:
                    return False
                col = conn.execute(text(
                    "select 1 from information_schema.columns where table_name = "
                    "'memory_embeddings' and column_name = :c and table_schema = "
                    "current_schema()"), {"c": PGVECTOR_COLUMN})
                return col.first() is not None

            self._pgvector = records._read(self.ledger, "the vector extension", work)
        return self._pgvector

    # -- writing --------------------------------------------------------------------------
    def _store(self, rows: list[dict[str, Any]]) -> int:
        """Embed and insert decisions not embedded yet by this model; how many."""
        if not rows:
            return 0
        summaries = [decision_summary(r) for r in rows]
        vecs = self.embedder.embed([semantic_text(s) for s in summaries])
        if vecs.shape != (len(rows), self.embedder.dim):
            raise RecallError(f"embedder {self.embedder.name} returned shape {vecs.shape}, "
                              f"not ({len(rows)}, {self.embedder.dim})")
        found = outcomes_by_decision(self.ledger, [r["id"] for r in rows])
        e = schema.memory_embeddings
        pg = self.uses_pgvector()

        def work(conn: Any) -> int:
            have = {i for (i,) in conn.execute(
                select(e.c.agent_decision_id).where(
                    e.c.model == self.embedder.name, e.c.kind == "decision",
                    e.c.agent_decision_id.in_([r["id"] for r in rows])))}
            n = 0
            for row, summary, vec in zip(rows, summaries, vecs):
                if row["id"] in have:
                    continue
                outcome = found.get(row["id"])
                new_id = conn.execute(e.insert().values(
                    agent_decision_id=row["id"], deployment_id=row["deployment_id"],
                    symbol=row["symbol"], ts=row["ts"], created_at=utcnow_iso(),
                    kind="decision", summary=summary, model=self.embedder.name,
                    dim=self.embedder.dim, vector=_pack(vec),
                    outcome=None if outcome is None else records._json("outcome", outcome))
                ).inserted_primary_key[0]
                if pg:
                    conn.execute(text(f"update memory_embeddings set {PGVECTOR_COLUMN} = "
                                      "cast(:v as vector) where id = :id"),
                                 {"v": _vector_literal(vec), "id": new_id})
                n += 1
            return n

        return records._write(self.ledger, "decision embeddings", work)

    def remember(self, decision_id: int) -> bool:
        """Embed one agent decision (once per model).

        Returns
        -------
        bool
            Whether a row was written (``False``: embedded already, or no such
            decision).

        Raises
        ------
        LedgerError
            If the ledger cannot be read or written.
        """
        row = records.agent_decision(self.ledger, decision_id)
        return bool(row) and self._store([row]) == 1

    def index(self, *, deployment_id: str | None = None, batch: int = 256) -> int:
        """Embed every agent decision (of a deployment) not embedded by this model yet.

        Parameters
        ----------
        deployment_id : str, optional
        batch : int
            Decisions embedded and written per transaction.

        Returns
        -------
        int
            How many were embedded. With pgvector, rows of this model without a value
            in the vector column (stored before it existed) get one too.

        Raises
        ------
        LedgerError
            If the ledger cannot be read or written.
        """
        ad, e = schema.agent_decisions, schema.memory_embeddings
        done = select(e.c.agent_decision_id).where(e.c.model == self.embedder.name,
                                                   e.c.kind == "decision",
                                                   e.c.agent_decision_id.is_not(None))
        q = select(ad.c.id).where(ad.c.id.not_in(done)).order_by(ad.c.id)
        if deployment_id is not None:
            q = q.where(ad.c.deployment_id == deployment_id)
        ids = [i for (i,) in records._read(self.ledger, "decisions to embed",
                                           lambda conn: conn.execute(q).all())]
        total = 0
        for i in range(0, len(ids), batch):
            part = select(ad).where(ad.c.id.in_(ids[i:i + batch])).order_by(ad.c.id)
            rows = records._read(self.ledger, "decisions to embed", lambda conn, q=part:
                                 records._decision_rows(conn, records._rows(conn, q)))
            total += self._store(rows)
        if self.uses_pgvector():
            self._backfill_pgvector()
        return total

    def _backfill_pgvector(self) -> None:
        """Fill the pgvector column of this model's rows that have none (rows stored
        before the column existed), from their float32 bytes."""
        e = schema.memory_embeddings

        def work(conn: Any) -> None:
            rows = conn.execute(select(e.c.id, e.c.dim, e.c.vector).where(
                e.c.model == self.embedder.name, text(f"{PGVECTOR_COLUMN} is null"))).all()
            for r in rows:
                conn.execute(text(f"update memory_embeddings set {PGVECTOR_COLUMN} = "
                                  "cast(:v as vector) where id = :id"),
                             {"v": _vector_literal(_unpack(r.vector, r.dim)), "id": r.id})

        records._write(self.ledger, "the embeddings' vector column", work)

    # -- searching ------------------------------------------------------------------------
    def retrieve_similar_context(self, query: str, k: int = 5, *,
                                 deployment_id: str | None = None,
                                 symbol: str | None = None) -> list[dict[str, Any]]:
        """Return the ``k`` past decisions whose summaries are closest to ``query``.

        Parameters
        ----------
        query : str
            A situation in words (``put on NVDA with VIX above 25``); VIX figures are
            read as bands (:func:`normalise_query`).
        k : int
            How many, >= 1.
        deployment_id, symbol : str, optional
            Only this deployment's, this symbol's decisions.

        Returns
        -------
        list of dict
            Most similar first: ``agent_decision_id``, ``deployment_id``, ``symbol``,
            ``ts`` (UTC epoch seconds), ``summary``, ``action`` (the summary's first
            word), ``outcome`` (``None`` until known), ``similarity`` (cosine, -1 to 1).

        Raises
        ------
        LedgerError
            An empty query or ``k`` below 1, a stored vector of the wrong length, or a
            ledger that cannot be read.
        """
        if not isinstance(query, str) or not query.strip():
            raise LedgerError(f"recall query {query!r}: give a text")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise LedgerError(f"recall k {k!r}: give at least 1")
        qvec = self.embedder.embed([normalise_query(query)])[0]
        e = schema.memory_embeddings
        where = [e.c.model == self.embedder.name]
        if deployment_id is not None:
            where.append(e.c.deployment_id == deployment_id)
        if symbol is not None:
            where.append(e.c.symbol == symbol)
        cols = (e.c.id, e.c.agent_decision_id, e.c.deployment_id, e.c.symbol, e.c.ts,
                e.c.summary, e.c.outcome)
        if self.uses_pgvector():
            dist = text(f"{PGVECTOR_COLUMN} <=> cast(:q as vector)")
            q = (select(*cols, text(f"1 - ({PGVECTOR_COLUMN} <=> cast(:q as vector)) as sim"))
                 .where(*where, text(f"{PGVECTOR_COLUMN} is not null"))
                 .order_by(dist, e.c.id).limit(k))
            rows = records._read(self.ledger, "similar decisions", lambda conn: conn.execute(
                q, {"q": _vector_literal(qvec)}).all())
            scored = [(float(r.sim), r) for r in rows]
        else:
            found = records._read(self.ledger, "similar decisions", lambda conn: conn.execute(
                select(e.c.id, e.c.dim, e.c.vector).where(*where).order_by(e.c.id)).all())
            if not found:
                return []
            dim = self.embedder.dim
            for r in found:
                if r.dim != dim or len(r.vector) != 4 * dim:
                    raise RecallError(f"a stored vector has {len(r.vector) // 4} values, "
                                      f"not {dim} (memory_embeddings id {r.id})")
            mat = np.frombuffer(b"".join(r.vector for r in found), dtype="<f4").reshape(-1, dim)
            norms = np.linalg.norm(mat, axis=1) * float(np.linalg.norm(qvec))
            sims = (mat @ qvec.astype(np.float32)).astype(np.float64) / np.where(
                norms > 0, norms, 1.0)
            order = np.argsort(-sims, kind="stable")[:k]
            top = [int(found[i].id) for i in order]
            details = {r.id: r for r in records._read(
                self.ledger, "similar decisions", lambda conn: conn.execute(
                    select(*cols).where(e.c.id.in_(top))).all())}
            scored = [(float(sims[i]), details[int(found[i].id)]) for i in order]
        return [{"agent_decision_id": r.agent_decision_id, "deployment_id": r.deployment_id,
                 "symbol": r.symbol, "ts": r.ts, "summary": r.summary,
                 "action": r.summary.split(" ", 1)[0],
                 "outcome": records._parse(f"embedding {r.id}: outcome", r.outcome, None),
                 "similarity": round(sim, 6)} for sim, r in scored]

    def set_outcome(self, decision_id: int, outcome: dict[str, Any]) -> int:
        """Set the outcome of a decision's embedding rows (every model's).

        Returns
        -------
        int
            Rows updated.

        Raises
        ------
        LedgerError
            A value that is not JSON, or a ledger that cannot be written.
        """
        e = schema.memory_embeddings
        stmt = (update(e).where(e.c.agent_decision_id == decision_id, e.c.kind == "decision")
                .values(outcome=records._json("embedding outcome", outcome)))
        return records._write(self.ledger, "an embedding's outcome",
                              lambda conn: int(conn.execute(stmt).rowcount))


__all__ = ["PGVECTOR_COLUMN", "Embedder", "RecallError", "SemanticRecall", "WordLlamaEmbedder",
           "decision_summary", "default_embedder", "event_query", "normalise_query",
           "semantic_text"]
