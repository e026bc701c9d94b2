"""Semantic recall (agent/recall.py): WordLlama loaded offline from its wheel, decision
summaries embedded and searched by exact cosine on SQLite and PostgreSQL (numpy), and
through pgvector's ``<=>`` when the database has the extension and the column."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from tradewarden.agent import records
from tradewarden.agent.recall import (
    RecallError,
    SemanticRecall,
    WordLlamaEmbedder,
    decision_summary,
    default_embedder,
    normalise_query,
    semantic_text,
)
from tradewarden.ledger import Ledger, LedgerError

T0 = 1_767_225_600
#: (VIX, NVDA's move as a fraction) of the put-writing decisions recorded
NVDA = [(14.2, 0.005), (18.0, -0.012), (22.5, -0.02), (27.9, -0.041), (31.2, -0.06),
        (26.5, -0.035), (12.1, 0.01)]


def _put_decision(led, ts, symbol, vix, move, dep="dep1"):
    return records.record_decision(
        led, deployment_id=dep, run_id="r1", ts=ts, event_kind="entry_signal", reasoner="rules",
        autonomy_level=2, symbol=symbol,
        context={"event": {"kind": "entry_signal", "ts": ts, "symbol": symbol,
                           "payload": {"signal": "sell_put", "move": str(move)}},
                 "market": {"vix": vix, "vix_open": vix / 1.05}},
        output={"action": "EXECUTE_TRADES", "target_symbols": [symbol], "confidence": 0.8,
                "reasoning": f"The strategy signals a put sale in {symbol}. Premium is rich."})


def _record(led):
    ids = {vix: _put_decision(led, T0 + i * 86_400, "NVDA", vix, move)
           for i, (vix, move) in enumerate(NVDA)}
    ids["AAPL"] = _put_decision(led, T0, "AAPL", 28.0, -0.03)
    ids["other"] = _put_decision(led, T0, "NVDA", 29.0, -0.05, dep="dep2")
    return ids


def test_wordllama_loads_from_the_wheel_without_the_network(monkeypatch, tmp_path):
    import requests
    import wordllama.wordllama as wl

    def no_network(*args, **kwargs):
        raise AssertionError(f"WordLlama tried the network: {args}")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(wl.requests, "get", no_network)
    monkeypatch.setattr(wl.WordLlama, "DEFAULT_CACHE_DIR", tmp_path / "empty-cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    emb = WordLlamaEmbedder()
    vecs = emb.embed(["sell a put on NVDA", "buy BTC"])
    assert vecs.shape == (2, 256) and vecs.dtype == np.float32 and emb.name.startswith("wordllama")
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 256)
    # without our cache_dir the loader looks under ~/.cache, finds nothing and downloads:
    # the guard above would fail that, so it really guards
    with pytest.raises(AssertionError, match="tried the network"):
        wl.WordLlama.load("l2_supercat", dim=256)
    with pytest.raises(RecallError, match="cannot be loaded"):
        WordLlamaEmbedder(dim=64)          # a dimension the wheel has no file for


def test_summaries_and_queries_say_the_market_in_words():
    row = {"action": "EXECUTE_TRADES", "symbol": "NVDA", "event_kind": "entry_signal",
           "context": {"event": {"payload": {"signal": "sell_put", "move": "-0.041"}},
                       "market": {"vix": 27.9, "vix_open": 25.0}},
           "output": {"target_symbols": ["NVDA"], "reasoning": "Rich premium. Next."}}
    s = decision_summary(row)
    assert s == ("EXECUTE_TRADES NVDA on entry_signal (signal sell_put). VIX high (27.9, +12% "
                 "since the open). NVDA down sharply (-4.1%). Rich premium.")
    assert semantic_text(s) == ("EXECUTE_TRADES NVDA on entry_signal. VIX high. NVDA down "
                                "sharply. Rich premium.")
    assert normalise_query("put on NVDA with VIX above 25") == "put on NVDA with VIX high very high"
    assert normalise_query("VIX below 20, NVDA") == "VIX calm, NVDA"
    assert normalise_query("VIX under 25") == "VIX calm elevated"
    assert normalise_query("VIX at 31") == "VIX very high"
    bare = {"action": "MONITOR_ONLY", "event_kind": "stale_market_data", "context": {},
            "output": {}}
    assert decision_summary(bare) == "MONITOR_ONLY on stale_market_data."


def test_puts_on_nvda_with_a_high_vix_come_first(ledger_db):
    led = Ledger(ledger_db)
    ids = _record(led)
    recall = SemanticRecall(led, pgvector=False)       # numpy on both backends
    assert not recall.uses_pgvector()
    assert recall.index() == len(ids)
    assert recall.index() == 0                 # once per decision and model
    assert recall.remember(ids[14.2]) is False
    found = recall.retrieve_similar_context("put on NVDA with VIX above 25", 3,
                                            deployment_id="dep1")
    assert {f["agent_decision_id"] for f in found} == {ids[27.9], ids[26.5], ids[31.2]}
    assert [f["similarity"] for f in found] == sorted((f["similarity"] for f in found),
                                                      reverse=True)
    assert found[0]["action"] == "EXECUTE_TRADES" and found[0]["outcome"] is None
    assert "VIX" in found[0]["summary"] and found[0]["symbol"] == "NVDA"
    calm = recall.retrieve_similar_context("put on NVDA with VIX below 20", 3,
                                           deployment_id="dep1")
    assert {f["agent_decision_id"] for f in calm} == {ids[14.2], ids[18.0], ids[12.1]}
    # filters: the symbol, the deployment
    aapl = recall.retrieve_similar_context("put with VIX above 25", 5, symbol="AAPL")
    assert [f["agent_decision_id"] for f in aapl] == [ids["AAPL"]]
    assert {f["deployment_id"] for f in recall.retrieve_similar_context("put", 50)} == {
        "dep1", "dep2"}
    # an outcome, once known, comes back with the past context
    assert recall.set_outcome(ids[27.9], {"kind": "taken", "pnl": "120.5"}) == 1
    again = recall.retrieve_similar_context("put on NVDA with VIX above 25", 1,
                                            deployment_id="dep1", symbol="NVDA")
    hit = next(f for f in recall.retrieve_similar_context("VIX high NVDA", 9)
               if f["agent_decision_id"] == ids[27.9])
    assert hit["outcome"] == {"kind": "taken", "pnl": "120.5"} and len(again) == 1
    with pytest.raises(LedgerError, match="recall k 0"):
        recall.retrieve_similar_context("x", 0)
    with pytest.raises(LedgerError, match="recall query ''"):
        recall.retrieve_similar_context("", 1)
    led.close()


def test_pgvector_searches_in_sql_with_the_same_order(postgres_url):
    name = f"recall_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY'))
    admin.dispose()
    db = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    led = Ledger(db)
    ids = _record(led)
    numpy_recall = SemanticRecall(led, pgvector=False)
    numpy_recall.index()
    queries = ["put on NVDA with VIX above 25", "NVDA put, VIX 23", "calm market put on AAPL"]
    expected = [numpy_recall.retrieve_similar_context(q, 9) for q in queries]
    # what migration 0011 does where the extension can be created (a no-op once it ran),
    # with the column emptied: rows stored before it existed
    with led.engine.begin() as conn:
        conn.execute(text("create extension if not exists vector"))
        conn.execute(text("alter table memory_embeddings add column if not exists "
                          "embedding vector"))
        conn.execute(text("update memory_embeddings set embedding = null"))
    recall = SemanticRecall(led)
    assert recall.uses_pgvector()
    assert recall.index() == 0          # embedded already: the column is filled from the bytes
    with led.engine.connect() as conn:
        assert conn.execute(text("select count(*) from memory_embeddings "
                                 "where embedding is null")).scalar() == 0
    for q, want in zip(queries, expected):
        got = recall.retrieve_similar_context(q, 9)
        assert [g["agent_decision_id"] for g in got] == [w["agent_decision_id"] for w in want]
        assert [g["similarity"] for g in got] == pytest.approx([w["similarity"] for w in want],
                                                               abs=1e-5)
    assert [g["agent_decision_id"] for g in recall.retrieve_similar_context(
        "put with VIX above 25", 5, symbol="AAPL")] == [ids["AAPL"]]
    led.close()


def test_a_stored_vector_of_the_wrong_length_is_named(tmp_path):
    led = Ledger(tmp_path / "l.db")
    ids = _record(led)
    recall = SemanticRecall(led, default_embedder())
    recall.index()
    with led.engine.begin() as conn:
        conn.execute(text("update memory_embeddings set vector = :v where agent_decision_id = :i"),
                     {"v": b"\x00" * 8, "i": ids[14.2]})
    with pytest.raises(RecallError, match=r"a stored vector has 2 values, not 256 \(memory_embeddings id \d+\)"):
        recall.retrieve_similar_context("put", 3)
    led.close()
