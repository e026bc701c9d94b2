"""Settings: file < secret file < environment < flag, with provenance; secrets stay secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from tradewarden.engine.config import RunConfig
from tradewarden.settings import (
    SECRET_KEYS,
    ConfigError,
    env_var,
    load_settings,
    starter_config,
)

#: The peer benchmark's config (a copy of ../shared/bench/textbook.toml, which CI may not have).
TEXTBOOK = Path(__file__).resolve().parent / "fixtures" / "textbook.toml"


def write(tmp_path: Path, text: str, name: str = "warden.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_any_source_equal_runconfig_defaults():
    loaded = load_settings()
    assert loaded.run_config() == RunConfig()
    assert loaded.origins == {}
    assert all(origin == "default" for _, _, origin in loaded.rows())


def test_precedence_flag_over_env_over_file_over_default(tmp_path, monkeypatch):
    cfg = write(tmp_path, "fee_bps = 7\nslippage_bps = 1\nmaker_fee_bps = 4\n[risk]\ncash_buffer = 0.1\n")
    monkeypatch.setenv("TRADEWARDEN_FEE_BPS", "8")
    monkeypatch.setenv("TRADEWARDEN_SLIPPAGE_BPS", "3")
    monkeypatch.setenv("TRADEWARDEN_RISK__CASH_BUFFER", "0.2")
    loaded = load_settings(cfg, {"fee_bps": (9.0, "--fee-bps")})
    run = loaded.run_config()
    assert (run.fee_bps, run.slippage_bps, run.maker_fee_bps, run.risk.cash_buffer) == (9.0, 3.0, 4.0, 0.2)
    assert run.capital == RunConfig().capital
    sources = {k: o for k, _, o in loaded.rows()}
    assert sources["fee_bps"] == "--fee-bps"
    assert sources["slippage_bps"] == "env TRADEWARDEN_SLIPPAGE_BPS"
    assert sources["maker_fee_bps"] == f"file {cfg}"
    assert sources["risk.cash_buffer"] == "env TRADEWARDEN_RISK__CASH_BUFFER"
    assert sources["capital"] == "default"


def test_the_peer_benchmark_textbook_file_switches_the_breakers_to_never_trip():
    loaded = load_settings(TEXTBOOK)
    run = loaded.run_config()
    assert run.params == {"entry_window": 20, "exit_window": 10, "use_bracket": False}
    assert str(run.risk.sizing) == "fixed:1" and run.slippage_bps == 0 and run.fee_bps == 10
    assert (run.risk.daily_loss_limit, run.risk.max_drawdown_halt) == (1.0, 1.0)
    assert run.risk.max_consecutive_losses == 1_000_000_000
    assert run.venue_fees is False           # a fee set in the file wins over a venue's schedule


@pytest.mark.parametrize("text", ["false", '"off"', '"none"'])
def test_breakers_switched_off_in_a_file(tmp_path, text):
    cfg = write(tmp_path, f"[risk]\ndaily_loss_limit = {text}\nmax_drawdown_halt = {text}\n"
                          f"max_consecutive_losses = {text}\n")
    risk = load_settings(cfg).run_config().risk
    assert (risk.daily_loss_limit, risk.max_drawdown_halt, risk.max_consecutive_losses) == (None,) * 3
    assert set(risk.breakers.values()) == {"off"}


def test_breaker_switched_off_from_env_and_set(monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_RISK__MAX_DRAWDOWN_HALT", "off")
    loaded = load_settings(None, {"risk.max_consecutive_losses": ("off", "--set risk.max_consecutive_losses")})
    risk = loaded.run_config().risk
    assert risk.max_drawdown_halt is None and risk.max_consecutive_losses is None
    assert risk.daily_loss_limit == 0.05


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_numbers_are_refused_naming_their_source(tmp_path, monkeypatch, value):
    with pytest.raises(ConfigError, match=rf"^--slippage-bps {value}: input should be a finite number"):
        load_settings(None, {"slippage_bps": (value, "--slippage-bps")})
    monkeypatch.setenv("TRADEWARDEN_RISK__DAILY_LOSS_LIMIT", value)
    with pytest.raises(ConfigError, match=r"^TRADEWARDEN_RISK__DAILY_LOSS_LIMIT="):
        load_settings()
    monkeypatch.delenv("TRADEWARDEN_RISK__DAILY_LOSS_LIMIT")
    cfg = write(tmp_path, f'fee_bps = "{value}"\n')
    with pytest.raises(ConfigError, match=rf"^file {cfg}: fee_bps = {value}: input should be a finite"):
        load_settings(cfg)


@pytest.mark.parametrize("key, value, why", [
    ("capital", "1e400", "above the largest supported amount"),
    ("capital", "-5", "capital must be positive"),
    ("capital", "NaN", "finite number"),
    ("risk.sizing", "fixed:1e999", "at most 1e+12 base units"),
    ("fee_bps", 10_000, "less than 10000"),
    ("risk.max_drawdown_halt", 1.5, "less than or equal to 1"),
    ("chunk_bars", 0, "greater than or equal to 1"),
    ("timeframe", "1M", "invalid timeframe"),
    ("capital_mode", "shared", "'independent' or 'portfolio'"),
])
def test_out_of_range_values_name_the_flag(key, value, why):
    with pytest.raises(ConfigError) as exc:
        load_settings(None, {key: (value, "--the-flag")}).run_config()
    assert str(exc.value).startswith("--the-flag") and why in str(exc.value)


def test_unknown_keys_are_named_with_the_known_ones(tmp_path):
    cfg = write(tmp_path, "[risk]\nmax_drawdown = 0.2\n")      # the field is max_drawdown_halt
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    msg = str(exc.value)
    assert msg.startswith(f"file {cfg}: unknown setting 'risk.max_drawdown'")
    assert "max_drawdown_halt" in msg
    cfg = write(tmp_path, "fees = 3\n", "top.toml")
    with pytest.raises(ConfigError, match="unknown setting 'fees'.*fee_bps"):
        load_settings(cfg)


def test_toml_syntax_errors_name_the_file_and_line(tmp_path):
    cfg = write(tmp_path, 'strategy = "donchian"\ncapital = \n')
    with pytest.raises(ConfigError, match=rf"--config {cfg}: not valid TOML: .*line 2"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.toml")


def test_two_spellings_of_one_symbol_are_refused():
    with pytest.raises(ConfigError, match="'BTC-USD' and 'btc_usd' are both BTC-USD"):
        load_settings(None, {"symbols": ("BTC-USD,btc_usd", "--symbols")}).run_config()
    run = load_settings(None, {"symbols": ("btc_usd, ETH/USD", "--symbols")}).run_config()
    assert run.symbols == ("BTC-USD", "ETH-USD")


def test_symbols_from_env_as_a_comma_list(monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_SYMBOLS", "SOL-USD,ETH-USD")
    assert load_settings().run_config().symbols == ("SOL-USD", "ETH-USD")


def test_params_merge_file_env_and_flags(tmp_path, monkeypatch):
    cfg = write(tmp_path, "[params]\nentry_window = 55\nexit_window = 20\n")
    monkeypatch.setenv("TRADEWARDEN_PARAMS__EXIT_WINDOW", "15")
    loaded = load_settings(cfg, {"params.use_bracket": ("false", "-p use_bracket=false")})
    assert loaded.run_config().params == {"entry_window": 55, "exit_window": "15", "use_bracket": "false"}
    assert str(loaded.origin("params.use_bracket")) == "-p use_bracket=false"


# ------------------------------------------------------------------------- secrets

@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_secrets_in_a_config_file_or_a_flag_are_refused(tmp_path, key):
    section, name = key.split(".")
    cfg = write(tmp_path, f'[{section}]\n{name} = "hunter2"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "hunter2" not in str(exc.value) and env_var(key) in str(exc.value)
    with pytest.raises(ConfigError, match="secrets are never read from config files or flags"):
        load_settings(None, {key: ("hunter2", f"--set {key}")})


def test_secrets_from_env_and_secret_files_are_masked_and_never_in_the_run_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_VENUE__API_KEY", "key-from-env")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tradewarden_venue__api_secret").write_text("secret-from-file")
    loaded = load_settings(None, secrets_dir=str(secrets))
    venue = loaded.settings.venue
    assert isinstance(venue.api_key, SecretStr) and venue.api_key.get_secret_value() == "key-from-env"
    assert venue.api_secret.get_secret_value() == "secret-from-file"
    shown = json.dumps(loaded.rows())
    assert "key-from-env" not in shown and "secret-from-file" not in shown
    assert "******** (set)" in shown and f"secret file {secrets}/tradewarden_venue__api_secret" in shown
    run = loaded.run_config()
    for text in (run.canonical_json(), repr(loaded.settings), str(loaded.settings)):
        assert "key-from-env" not in text and "secret-from-file" not in text
    assert run.config_hash() == RunConfig().config_hash()


def test_ledger_password_is_merged_into_a_server_url_only(monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_LEDGER__PASSWORD", "p@ss%word")
    pg = load_settings(None, {"ledger.db": ("postgresql+psycopg://warden@db.example:5432/ledger", "--db")})
    url = pg.ledger.url()
    from sqlalchemy.engine import make_url
    assert make_url(url).password == "p@ss%word" and make_url(url).username == "warden"
    assert "p@ss%word" not in json.dumps(pg.rows())
    sqlite = load_settings(None, {"ledger.db": ("warden-out/x.db", "--db")})
    assert sqlite.ledger.url() == "warden-out/x.db"


# ------------------------------------------------------------------------- starter file

def test_starter_file_loads_to_the_defaults_and_mentions_every_key(tmp_path):
    cfg = write(tmp_path, starter_config())
    loaded = load_settings(cfg)
    assert loaded.run_config() == RunConfig()
    defaults = load_settings()
    assert loaded.settings.gates == defaults.settings.gates
    assert loaded.settings.report == defaults.settings.report
    assert loaded.settings.ledger == defaults.settings.ledger
    text = starter_config()
    for key, _, _ in defaults.rows():
        leaf = key.split(".")[-1]
        if key != "params":
            assert leaf in text, f"{key} is not documented in the starter file"


def test_the_readme_config_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Configuration"):]
    block = section[section.index("```toml") + len("```toml"):section.index("```", section.index("```toml") + 7)]
    run = load_settings(write(tmp_path, block)).run_config()
    assert run.risk.daily_loss_limit is None and run.risk.max_drawdown_halt == 1.0
    assert run.risk.breakers == {"daily_loss": "off", "max_drawdown": "off",
                                 "consecutive_losses": "1000000000 losses"}
    assert load_settings(write(tmp_path, block, "again.toml")).gates.min_closed_trades == 50


def test_deployments_entries_override_the_file_and_errors_name_the_entry(tmp_path):
    from tradewarden.settings import deployment_settings
    cfg = write(tmp_path, """
mode = "paper"
strategy = "donchian"
symbols = ["BTC-USD"]
[params]
entry_window = 12
[venue]
name = "coinbase"
[daemon]
reconnect_seconds = 30
[[deployments]]
name = "btc"
[[deployments]]
name = "eth"
strategy = "ema_rsi"
symbols = ["ETH-USD"]
[deployments.risk]
sizing = "risk:0.005"
[deployments.venue]
name = "kraken"
""")
    specs = deployment_settings(load_settings(cfg))
    assert [n for n, _ in specs] == ["btc", "eth"]
    btc, eth = (one.run_config() for _, one in specs)
    assert btc.strategy == "donchian" and btc.params == {"entry_window": 12}
    assert str(btc.risk.sizing) == "risk:0.01" and specs[0][1].venue.name == "coinbase"
    # a new strategy does not inherit the file's parameters (they belong to donchian)
    assert eth.strategy == "ema_rsi" and eth.params == {} and eth.symbols == ("ETH-USD",)
    assert str(eth.risk.sizing) == "risk:0.005" and specs[1][1].venue.name == "kraken"
    assert specs[1][1].daemon.reconnect_seconds == 30          # the file's, shared
    assert specs[1][1].origin("symbols").where.endswith("deployments[2]")
    # a file without entries is one deployment, named by --deployment or the default
    plain = write(tmp_path, 'symbols = ["BTC-USD"]\n', "plain.toml")
    assert [n for n, _ in deployment_settings(load_settings(plain))] == [None]
    for body, message in (
            ('[[deployments]]\nsymbols = ["BTC-USD"]\n', "deployments[1]: give each"),
            ('[[deployments]]\nname = "a"\n[[deployments]]\nname = "a"\n', "'a' is used twice"),
            ('[[deployments]]\nname = "a"\n[deployments.ledger]\ndb = "x.db"\n',
             "deployments[1] (a): ledger cannot be set per deployment"),
            ('[[deployments]]\nname = "a"\ncapital = "-5"\n',
             "deployments[1] (a): capital = -5: capital must be positive")):
        bad = write(tmp_path, body, "bad.toml")
        with pytest.raises(ConfigError) as exc:
            deployment_settings(load_settings(bad))
        assert message in str(exc.value) and str(bad) in str(exc.value)
