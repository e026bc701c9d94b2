"""``warden live`` refuses until every gate is passed, before any ledger or venue call."""

from __future__ import annotations

from typer.testing import CliRunner

from tradewarden.cli import app


def _config(tmp_path, mode="live", venue='name = "kraken"'):
    cfg = tmp_path / "live.toml"
    cfg.write_text(f'mode = "{mode}"\nsymbols = ["BTC-USD"]\n[ledger]\ndb = "{tmp_path / "l.db"}"\n'
                   f"[venue]\n{venue}\n")
    return cfg


def _live(cfg, *args, env=None):
    return CliRunner().invoke(app, ["live", "--config", str(cfg), *args], env=env or {})


def test_live_needs_mode_live_in_the_config(tmp_path):
    r = _live(_config(tmp_path, mode="replay"), "--live")
    assert r.exit_code == 2
    assert 'the config says mode = "replay": set mode = "live"' in r.output
    assert "`warden paper`" in r.output
    assert not (tmp_path / "l.db").exists()


def test_live_needs_the_live_flag_and_credentials(tmp_path, monkeypatch):
    for name in ("TRADEWARDEN_VENUE__API_KEY", "TRADEWARDEN_VENUE__API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    r = _live(_config(tmp_path))
    assert r.exit_code == 2
    assert "pass --live to trade real money" in r.output
    assert "no credentials for kraken: set TRADEWARDEN_VENUE__API_KEY and " in r.output
    r = _live(_config(tmp_path, venue='name = "coinbase"'), "--live")
    assert r.exit_code == 2 and "pass --live" not in r.output
    assert "or [venue] key_file (the CDP key file)" in r.output
    assert not (tmp_path / "l.db").exists()


def test_live_needs_a_venue(tmp_path):
    r = _live(_config(tmp_path, venue=""), "--live")
    assert r.exit_code == 2
    assert "set [venue] name (coinbase, kraken or another ccxt id)" in r.output
