"""Configuration: a TOML file, the environment and command-line flags, layered.

Every setting has one key. The keys of :class:`~tradewarden.engine.config.RunConfig`
(what determines a run's result, hashed into ``runs.config_hash``) sit at the top of
the file; ``[params]`` holds strategy parameters and ``[risk]`` every limit of
:class:`~tradewarden.risk.RiskConfig`. The other sections do not change a run's
result and are not hashed: ``[gates]`` (promotion gates), ``[ledger]`` (where the
ledger lives), ``[report]`` (where reports go) and ``[venue]`` (the exchange account
that paper and live trading will use)::

    strategy = "donchian"
    capital = "10000"
    fee_bps = 10

    [params]
    entry_window = 20

    [risk]
    sizing = "risk:0.01"
    max_drawdown_halt = false      # a circuit breaker switched off

Precedence, highest first: a command-line flag, the environment
(``TRADEWARDEN_<KEY>`` for a top-level key, ``TRADEWARDEN_<SECTION>__<KEY>`` for a
section's key, read by pydantic-settings), a secret file, the config file, the
default. :func:`load_settings` records where each value came from, so
``warden config show`` can say it and an invalid value is reported with its source
(the flag, the environment variable or the file).

Secrets (fields typed :class:`~pydantic.SecretStr`: ``ledger.password``,
``venue.api_key``, ``venue.api_secret``) are read only from the environment or from
secret files (``$TRADEWARDEN_SECRETS_DIR`` or ``/run/secrets``, one file per secret,
named like its environment variable in lower case, e.g.
``tradewarden_venue__api_secret``). A secret in a config file or on the command line
is refused. Secrets are never printed, never logged and never part of
``runs.config`` or its hash.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources import NestedSecretsSettingsSource

from tradewarden.agent.autonomy_settings import AutonomySettings
from tradewarden.ops.api_settings import ApiSettings
from tradewarden.ml.settings import MlSettings
from tradewarden.ops.reasoning_settings import ReasoningSettings
from tradewarden.agent.learning_settings import LearningSettings
from tradewarden.analytics.gates import GateConfig
from tradewarden.ops.alert_settings import AlertSettings
from tradewarden.engine.config import RunConfig
from tradewarden.ledger.store import DEFAULT_DB

__all__ = ["ENV_PREFIX", "ConfigError", "DaemonSettings", "GateSettings", "LedgerSettings", "LoadedSettings",
           "Origin", "ReportSettings", "VenueSettings", "WardenSettings", "env_var",
           "deployment_settings", "load_settings", "starter_config"]

#: Prefix of every environment variable tradewarden reads.
ENV_PREFIX = "TRADEWARDEN_"
#: Separator between a section and its key in an environment variable name.
ENV_NESTED = "__"
#: Where secret files are looked for when ``$TRADEWARDEN_SECRETS_DIR`` is not set.
DEFAULT_SECRETS_DIR = "/run/secrets"


class ConfigError(ValueError):
    """A configuration value is invalid or misplaced; the message names its source
    (the config file, the environment variable or the flag) and the key."""


class GateSettings(GateConfig):
    """``[gates]``: promotion-gate thresholds, and whether a failed gate fails the command.

    Parameters
    ----------
    enforce : bool
        Exit with status 3 when a gate fails (``--gate``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    enforce: bool = False

    def gate_config(self) -> GateConfig:
        """Return the thresholds alone, as the report takes them."""
        return GateConfig(**self.model_dump(exclude={"enforce"}))


class LedgerSettings(BaseModel):
    """``[ledger]``: where the audited record lives.

    Parameters
    ----------
    db : str
        SQLite file path or SQLAlchemy URL (``postgresql+psycopg://user@host/db``).
    password : SecretStr or None
        Password of a server database, merged into ``db`` when connecting; from
        ``TRADEWARDEN_LEDGER__PASSWORD`` or a secret file only. Ignored for SQLite.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    db: str = DEFAULT_DB
    password: SecretStr | None = None

    def url(self) -> str:
        """Return the database to open: ``db`` with the password merged in (never print it).

        Raises
        ------
        tradewarden.ledger.LedgerError
            When ``db`` is not a path or a valid URL.
        """
        if self.password is None or "://" not in self.db or self.db.startswith("sqlite"):
            return self.db
        from sqlalchemy.engine import make_url

        from tradewarden.ledger.store import resolve_url
        url = make_url(resolve_url(self.db)).set(password=self.password.get_secret_value())
        return url.render_as_string(hide_password=False)


class ReportSettings(BaseModel):
    """``[report]``: where reports go and what is printed.

    Parameters
    ----------
    out : pathlib.Path
        Directory for the JSON and HTML reports.
    format : {"all", "console", "json", "html"}
        ``all``: console report, JSON and HTML files; ``json``: the JSON on stdout.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    out: Path = Path("warden-out/reports")
    format: Literal["all", "console", "json", "html"] = "all"


class VenueSettings(BaseModel):
    """``[venue]``: the exchange account paper and live trading connect to.

    Replay reads none of it (``exchange`` picks the history source). Kept here so one
    file configures a strategy from replay to live, and so the secrets rules hold from
    the first release.

    Parameters
    ----------
    name : str or None
        ccxt id or ``coinbase`` / ``ibkr``.
    api_url : str or None
        Another host for the venue's API (a sandbox, a proxy, a loopback fake).
    data_url : str or None
        Another host for the venue's public market data (candles, markets) only;
        default ``api_url``.
    api_key, api_secret : SecretStr or None
        Credentials, from ``TRADEWARDEN_VENUE__API_KEY`` / ``..._API_SECRET`` or secret
        files only.
    key_file : pathlib.Path or None
        A key file the venue issues (Coinbase's CDP JSON key); the path is not a secret,
        its contents are and are never read into the configuration.
    host : str or None
        Interactive Brokers: the TWS or IB Gateway host (default ``127.0.0.1``).
    port : int or None
        Interactive Brokers: the API socket port (default 7497, TWS's paper port; 7496
        is TWS's live port, 4002 / 4001 IB Gateway's paper / live).
    client_id : int or None
        Interactive Brokers: the API client id (default 1); two sessions with the same
        id are refused by the gateway (error 326).
    account : str or None
        Interactive Brokers: the account code (``DU...`` for a paper account); default
        the only account the login manages.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str | None = None
    api_url: str | None = None
    data_url: str | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    key_file: Path | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    client_id: int | None = Field(None, ge=0)
    account: str | None = None


class DaemonSettings(BaseModel):
    """``[daemon]``: how ``warden daemon start`` runs its deployments.

    Parameters
    ----------
    calendar : str or None
        The exchange-calendars code of the deployments' market (``XNYS`` for US
        equities) for market open, pre-market and close events; ``None`` (the default)
        for 24/7 crypto, which has none of them.
    pre_market_minutes : int
        Minutes before the open the ``pre_market`` event fires.
    end_of_day_utc : str
        ``HH:MM`` UTC of the ``end_of_day`` event on a 24/7 market (with a calendar it
        fires after the close).
    watch_folder : pathlib.Path or None
        A folder whose new files raise ``new_data_file`` events.
    inbox_seconds : float
        Clock seconds between looks at the command inbox while waiting for a bar.
    reconnect_seconds : float
        Clock seconds between two attempts to restart a deployment whose venue (or
        anything else) failed; it reconciles before it trades again.
    stale_seconds : float
        No market-data update for this long while the market is open raises
        ``stale_data`` (seconds).
    stop_approach_fraction, significant_move_fraction : float
        ``stop_approaching`` when a price is within this fraction of a stop (0.05),
        ``significant_move`` when it is this far from the entry (0.03).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    calendar: str | None = None
    pre_market_minutes: int = Field(30, ge=0, le=720)
    end_of_day_utc: str = Field("23:55", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    watch_folder: Path | None = None
    inbox_seconds: float = Field(5.0, gt=0)
    reconnect_seconds: float = Field(60.0, gt=0)
    stale_seconds: float = Field(300.0, gt=0)
    stop_approach_fraction: float = Field(0.05, gt=0, lt=1)
    significant_move_fraction: float = Field(0.03, gt=0, lt=1)


#: Sections that are not part of :class:`RunConfig`.
SECTIONS: dict[str, type[BaseModel]] = {"gates": GateSettings, "ledger": LedgerSettings,
                                        "report": ReportSettings, "venue": VenueSettings,
                                        "daemon": DaemonSettings, "autonomy": AutonomySettings,
                                        "alerts": AlertSettings, "api": ApiSettings,
                                        "reasoning": ReasoningSettings, "ml": MlSettings,
                                        "learning": LearningSettings}


class _SettingsBase(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED,
                                      case_sensitive=False, extra="forbid", frozen=True,
                                      allow_inf_nan=False, validate_default=False)


def _comma_list(value: Any) -> Any:
    return tuple(p.strip() for p in value.split(",")) if isinstance(value, str) else value


def _settings_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in RunConfig.model_fields.items()}
    # ``TRADEWARDEN_SYMBOLS=BTC-USD,ETH-USD`` and ``symbols = "BTC-USD,ETH-USD"`` as well as lists.
    fields["symbols"] = (Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)],
                         RunConfig.model_fields["symbols"])
    for name, model in SECTIONS.items():
        fields[name] = (model, Field(default_factory=model))
    # ``[[deployments]]``: several deployments in one file (checked by deployment_settings)
    fields["deployments"] = (tuple[dict[str, Any], ...], Field(default=()))
    return fields


#: All settings: :class:`RunConfig`'s fields at the top level plus the sections of
#: :data:`SECTIONS`. ``WardenSettings()`` alone reads the environment (pydantic-settings);
#: :func:`load_settings` adds the config file, secret files and flags, with provenance.
WardenSettings: type[BaseSettings] = create_model("WardenSettings", __base__=_SettingsBase,
                                                  __doc__="All tradewarden settings.",
                                                  **_settings_fields())


def env_var(key: str) -> str:
    """Return the environment variable of a settings key (``risk.sizing`` →
    ``TRADEWARDEN_RISK__SIZING``)."""
    return ENV_PREFIX + key.replace(".", ENV_NESTED).upper()


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from.

    Parameters
    ----------
    kind : {"default", "file", "secret", "env", "cli"}
    where : str
        The file path, secret file, environment variable or flag.
    """

    kind: str
    where: str = ""
    raw: Any = field(default=None, compare=False)

    def __str__(self) -> str:
        return {"default": "default", "file": f"file {self.where}", "secret": f"secret file {self.where}",
                "env": f"env {self.where}", "cli": self.where}[self.kind]


DEFAULT = Origin("default")


@dataclass
class LoadedSettings:
    """Validated settings with the origin of every value that was set.

    Attributes
    ----------
    settings : WardenSettings
    origins : dict of str to Origin
        Flattened key (``risk.sizing``, ``params.entry_window``) → where it was set;
        keys at their default are absent.
    config_file : pathlib.Path or None
    """

    settings: Any
    origins: dict[str, Origin] = field(default_factory=dict)
    config_file: Path | None = None

    def origin(self, key: str) -> Origin:
        """Return where ``key`` (or any key below it) was set, or the default."""
        if key in self.origins:
            return self.origins[key]
        below = [o for k, o in self.origins.items() if k.startswith(key + ".")]
        return below[0] if below else DEFAULT

    def was_set(self, key: str) -> bool:
        """Whether ``key`` was given anywhere (file, environment, secret or flag)."""
        return self.origin(key) is not DEFAULT

    def run_config(self) -> RunConfig:
        """Return the :class:`RunConfig` part (what determines a run's result).

        ``venue_fees`` (use an exchange's fee schedule with ``exchange``) is off when
        a fee was set explicitly anywhere, unless ``venue_fees`` itself was set.

        Raises
        ------
        ConfigError
            Naming the source of an invalid combination (duplicate symbols, ...).
        """
        s = self.settings
        values = {name: getattr(s, name) for name in RunConfig.model_fields}
        if not self.was_set("venue_fees"):
            values["venue_fees"] = not (self.was_set("fee_bps") or self.was_set("maker_fee_bps"))
        try:
            return RunConfig(**values)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, self)) from None

    @property
    def gates(self) -> GateSettings:
        """The ``[gates]`` section."""
        return self.settings.gates

    @property
    def ledger(self) -> LedgerSettings:
        """The ``[ledger]`` section."""
        return self.settings.ledger

    @property
    def venue(self) -> VenueSettings:
        """The ``[venue]`` section (paper and live)."""
        return self.settings.venue

    @property
    def daemon(self) -> DaemonSettings:
        """The ``[daemon]`` section."""
        return self.settings.daemon

    @property
    def report(self) -> ReportSettings:
        """The ``[report]`` section."""
        return self.settings.report

    def rows(self) -> list[tuple[str, str, str]]:
        """``(key, value as text, origin)`` for every setting, secrets masked.

        Strategy parameters appear as given (``params.*``); defaults the strategy fills
        in are shown by ``warden strategies list``.
        """
        return [(key, _show(value), str(self.origin(key)))
                for key, value in _leaves(self.settings).items()]


def _leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Flatten a settings model to ``key -> value``; sections and ``params`` are expanded."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = prefix + name
        if isinstance(value, BaseModel) and (name in SECTIONS or name == "risk"):
            out.update(_leaves(value, key + "."))
        elif name == "params" and isinstance(value, Mapping):
            out.update({f"params.{k}": v for k, v in value.items()} or {"params": "(strategy defaults)"})
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------- loading

def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and (v or key == "params"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _secret_keys() -> set[str]:
    keys = set()
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            if info.annotation in (SecretStr, SecretStr | None):
                keys.add(f"{section}.{name}")
    return keys


SECRET_KEYS = frozenset(_secret_keys())


def _secret_refused(key: str, where: str) -> ConfigError:
    name = env_var(key)
    return ConfigError(f"{where}: {key} is a secret and secrets are never read from config files "
                       f"or flags; set {name} in the environment or put it in a secret file "
                       f"named {name.lower()}")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, not TOML (the message has TOML's line and
        column), or holds a secret.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {p}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"--config {p}: is a directory, expected a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {p}: not a text file (expected UTF-8 TOML)") from None
    except OSError as exc:
        raise ConfigError(f"--config {p}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {p}: not valid TOML: {exc}") from None
    for key in _flatten(data):
        if key in SECRET_KEYS:
            raise _secret_refused(key, str(p))
    return data


def _env_values() -> dict[str, Any]:
    try:
        return EnvSettingsSource(WardenSettings)()
    except SettingsError as exc:        # a JSON value that does not parse
        field_name = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise ConfigError(f"env {env_var(field_name)}: not valid JSON for {field_name!r} "
                          f"({exc.__cause__ or exc})") from None


def _secret_values(secrets_dir: str | None) -> tuple[dict[str, Any], str | None]:
    directory = secrets_dir or os.environ.get(ENV_PREFIX + "SECRETS_DIR") or DEFAULT_SECRETS_DIR
    if not Path(directory).is_dir():
        return {}, None
    src = NestedSecretsSettingsSource(WardenSettings, secrets_dir=directory,
                                      secrets_dir_missing="ok", secrets_prefix=ENV_PREFIX,
                                      secrets_nested_delimiter=ENV_NESTED)
    values = src()
    return {k: v for k, v in _nest(_flatten(values)).items()}, directory


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  cli: Mapping[str, tuple[Any, str]] | None = None, *,
                  secrets_dir: str | None = None) -> LoadedSettings:
    """Layer defaults, a config file, secret files, the environment and flags.

    Parameters
    ----------
    config_file : path, optional
        A TOML file (see the module docstring for its layout). ``None`` reads
        ``$TRADEWARDEN_CONFIG`` when set, else no file.
    cli : mapping, optional
        Flattened key → ``(value, flag)``, e.g. ``{"fee_bps": (5.0, "--fee-bps"),
        "risk.sizing": ("fixed:1", "--sizing")}``; the highest precedence.
    secrets_dir : str, optional
        Directory of secret files (default ``$TRADEWARDEN_SECRETS_DIR`` or
        ``/run/secrets`` when it exists).

    Returns
    -------
    LoadedSettings

    Raises
    ------
    ConfigError
        An unreadable or invalid file, an unknown key, a value that fails validation
        (NaN and infinities included), or a secret outside the environment and secret
        files; the message names the file, variable or flag, and the key.
    """
    origins: dict[str, Origin] = {}
    merged: dict[str, Any] = {}
    if config_file is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        config_file = os.environ[ENV_PREFIX + "CONFIG"]
    path = Path(config_file) if config_file is not None else None
    if path is not None:
        data = read_config_file(path)
        merged = _deep_merge(merged, data)
        origins.update({k: Origin("file", str(path), v) for k, v in _flatten(data).items()})
    secrets, directory = _secret_values(secrets_dir)
    if secrets:
        merged = _deep_merge(merged, secrets)
        origins.update({k: Origin("secret", f"{directory}/{env_var(k).lower()}")
                        for k in _flatten(secrets)})     # no raw value: never echoed
    env = _env_values()
    merged = _deep_merge(merged, env)
    origins.update({k: Origin("env", env_var(k), v) for k, v in _flatten(env).items()})
    for key, (value, flag) in (cli or {}).items():
        if key in SECRET_KEYS:
            raise _secret_refused(key, flag)
        merged = _deep_merge(merged, _nest({key: value}))
        origins[key] = Origin("cli", flag, value)
    loaded = LoadedSettings(None, origins, path)
    try:
        loaded.settings = WardenSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, loaded)) from None
    return loaded


#: Keys a ``[[deployments]]`` entry may set: the run's keys and ``[venue]``; the
#: ledger, the daemon and the other sections are the file's, shared by all.
DEPLOYMENT_KEYS = frozenset(RunConfig.model_fields) | {"name", "venue"}


def deployment_settings(loaded: LoadedSettings) -> list[tuple[str | None, LoadedSettings]]:
    """Return each deployment a config file names, with its own settings.

    A file without ``[[deployments]]`` is one deployment (its name from
    ``--deployment`` or the default). Each ``[[deployments]]`` entry needs a ``name``
    and may set any run key (``strategy``, ``symbols``, ``capital``, ``timeframe``,
    ``mode``, ``governor``, ``[params]``, ``[risk]``...) and ``[venue]``; the file's
    top level gives the defaults. An entry's ``params`` replace the top level's
    (parameters belong to a strategy), and an entry that changes ``strategy`` without
    ``params`` gets the strategy's defaults.

    Parameters
    ----------
    loaded : LoadedSettings

    Returns
    -------
    list of (str or None, LoadedSettings)
        ``(name, settings)``; ``name`` is ``None`` for a file without entries.

    Raises
    ------
    ConfigError
        An entry without a name, a duplicate name, a key an entry may not set, or a
        value that fails validation; the message names the file, the entry
        (``deployments[2]``, counting from 1) and the key.
    """
    entries = loaded.settings.deployments
    if not entries:
        return [(None, loaded)]
    where = str(loaded.config_file) if loaded.config_file else "the settings"
    base = loaded.settings.model_dump(exclude={"deployments"})
    out: list[tuple[str | None, LoadedSettings]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        label = f"{where}: deployments[{i}]"
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{label}: give each [[deployments]] entry a name")
        if name in seen:
            raise ConfigError(f"{label}: deployment name {name!r} is used twice")
        seen.add(name)
        unknown = sorted(set(entry) - DEPLOYMENT_KEYS)
        if unknown:
            raise ConfigError(f"{label} ({name}): {', '.join(unknown)} cannot be set per "
                              "deployment (the ledger, daemon, alert and report sections are "
                              "the file's); keys an entry may set: strategy, symbols, params, "
                              "risk, capital, timeframe, mode, governor, venue and the other "
                              "run keys")
        merged = dict(base)
        if "params" in entry or ("strategy" in entry and entry["strategy"] != base.get("strategy")):
            merged["params"] = {}
        merged = _deep_merge(merged, {k: v for k, v in entry.items() if k != "name"})
        origins = dict(loaded.origins)
        origins.update({k: Origin("file", f"{where} deployments[{i}]", v)
                        for k, v in _flatten({k: v for k, v in entry.items() if k != "name"}).items()})
        one = LoadedSettings(None, origins, loaded.config_file)
        try:
            one.settings = WardenSettings.model_validate(merged)
            one.run_config()
        except (ValidationError, ConfigError) as exc:
            msg = _explain(exc, one) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(msg.replace(f"deployments[{i}]", f"deployments[{i}] ({name})")
                              if f"deployments[{i}]" in msg else f"{label} ({name}): {msg}") from None
        out.append((name, one))
    return out


# ------------------------------------------------------------------------- messages

def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "******** (set)"
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, BaseModel):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _explain(exc: ValidationError, loaded: LoadedSettings) -> str:
    """One line for the first validation error: where the value came from, key, problem."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-", "constrained-"))]
    # pydantic adds union-branch names (``float``, ``int``) to a location: drop them.
    parts = [p for p in loc if p not in ("float", "int", "none", "str", "bool", "decimal")]
    key = ".".join(parts)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    origin = loaded.origin(key) if key else DEFAULT
    if err.get("type") == "extra_forbidden":
        section = parts[0] if len(parts) > 1 else None
        model = SECTIONS.get(section) if section else None
        if section == "risk":
            from tradewarden.risk import RiskConfig
            model = RiskConfig
        known = sorted((model or WardenSettings).model_fields)
        where = f"[{section}]" if section else "the top level"
        return (f"{origin}: unknown setting {key!r}; known keys at {where}: {', '.join(known)}")
    given = origin.raw if origin.raw is not None and key in loaded.origins else err.get("input")
    if origin.kind == "secret":
        given = None
    value = _show(given) if not isinstance(given, dict) else None
    problem = msg[0].lower() + msg[1:]
    if origin.kind == "cli":
        return f"{origin.where} {value}: {problem}" if value is not None else f"{origin.where}: {problem}"
    if origin.kind == "env":
        return f"{origin.where}={value!r}: {problem}"
    shown = f" = {value}" if value is not None else ""
    if origin.kind == "default":
        return f"{key}{shown}: {problem}"
    return f"{origin}: {key}{shown}: {problem}"


# ------------------------------------------------------------------------- starter file

def starter_config() -> str:
    """Return the commented starter file ``warden config init`` writes.

    Every setting appears: the common ones with their defaults, the rest commented
    out. Loading it gives the defaults (a test checks both).
    """
    return _STARTER


_STARTER = '''\
# tradewarden configuration (TOML). Used by `warden replay --config FILE` (and, later,
# paper, live and the daemon). Precedence, highest first: command-line flag,
# environment (TRADEWARDEN_<KEY>, TRADEWARDEN_<SECTION>__<KEY>), secret file, this
# file, default. `warden config show --config FILE` prints the effective values and
# where each came from.

# ---- the run: everything here is recorded in runs.config and its hash ---------------
mode = "replay"                 # replay | paper | live (`warden replay` always replays)
symbols = ["BTC-USD", "ETH-USD", "SOL-USD"]   # canonical BASE-QUOTE
# data = "data/"                # your CSV/Parquet OHLCV (file or directory); default: bundled samples
# timeframe = "1h"              # 1m 5m 15m 30m 1h 2h 4h 6h 12h 1d; default: the data's own bar length (1h bundled)
# start = "2025-01-01"          # UTC, inclusive
# end = "2025-07-01"            # UTC, exclusive
strategy = "donchian"           # donchian | ema_rsi | path/to/file.py:Class | package.module:Class
capital = "10000"               # quote currency, per symbol (independent) or in total (portfolio)
capital_mode = "independent"    # independent | portfolio
# fee_bps = 10.0                # taker fee, basis points of notional (with exchange: the venue's)
# maker_fee_bps = 5.0           # maker fee, limit and take-profit fills (with exchange: the venue's)
slippage_bps = 2.0              # adverse slippage on market and stop fills
skip_bad_rows = false           # true: skip malformed rows and mark the run degraded
governor = "autonomous"         # autonomous | monitor (record entries, submit none) | approval (queue entries for a person)
chunk_bars = 100000             # bars per engine batch (memory bound)
# exchange = "coinbase"         # read bars from this venue's cached history (ccxt id)
# cache_dir = "~/.cache/tradewarden"
offline = false                 # with exchange: never download
# venue_fees = true             # with exchange: the venue's fees unless a fee is set here
# adjust = "split"              # US equities: raw | split | split_dividend (default split)
# strategy_source is filled in by the run (file hash or package version)

[params]                        # strategy parameters (`warden strategies list`)
# entry_window = 20
# exit_window = 10
# use_bracket = true

[risk]
sizing = "risk:0.01"            # risk:FRACTION of equity lost at the stop, or fixed:QUANTITY base units
max_position_fraction = 0.95    # largest position, fraction of equity
cash_buffer = 0.02              # fraction of free cash kept back
max_open_positions = 10
# Circuit breakers: false (or "off") switches one off; 1.0 / a huge count never trips.
daily_loss_limit = 0.05         # halt for the rest of the UTC day at a 5 % daily loss
max_drawdown_halt = 0.30        # halt until reset at a 30 % drawdown from peak
max_consecutive_losses = 8      # halt after 8 losing trades in a row ...
consecutive_loss_cooldown_hours = 24.0   # ... for this long

# ---- not part of the run's hash ---------------------------------------------------------
[gates]                         # promotion gates in the report
min_closed_trades = 100
min_profit_factor = 1.0
max_drawdown_pct = 35.0
enforce = false                 # true: exit with status 3 when a gate fails (--gate)

[ledger]
db = "warden-out/ledger.db"     # SQLite path or SQLAlchemy URL
# password: only from TRADEWARDEN_LEDGER__PASSWORD or a secret file

[report]
out = "warden-out/reports"
format = "all"                  # all | console | json | html

[venue]                         # the account paper and live trading will use
# name = "coinbase"             # a ccxt id (coinbase, kraken, ...); coinbase trades through Coinbase's SDK
# api_url = "https://api.coinbase.com"   # another host: a sandbox, a proxy, a loopback fake
# data_url = "https://api.coinbase.com"  # another host for candles and markets only (default api_url)
# key_file = "~/cdp_api_key.json"  # Coinbase: the CDP key file (its path; the key stays in the file)
# api_key, api_secret: only from TRADEWARDEN_VENUE__API_KEY / __API_SECRET or secret files
# Interactive Brokers (name = "ibkr"): TWS or IB Gateway with the API socket enabled
# host = "127.0.0.1"
# port = 7497                   # TWS paper 7497, live 7496; IB Gateway paper 4002, live 4001
# client_id = 1                 # one per API session; the gateway refuses a duplicate
# account = "DU1234567"         # default: the only account the login manages

[daemon]                        # `warden daemon start`: events, schedules, restarts
# calendar = "XNYS"             # exchange-calendars code for market open/close events; none: 24/7 crypto
pre_market_minutes = 30         # pre_market event this long before the open
end_of_day_utc = "23:55"        # end_of_day on a 24/7 market (with a calendar: after the close)
# watch_folder = "incoming/"    # new files here raise new_data_file events
inbox_seconds = 5.0             # clock seconds between looks at the command inbox
reconnect_seconds = 60.0        # a failed deployment (venue down, ...) is restarted this often
stale_seconds = 300.0           # no market data this long while the market is open: stale_data
stop_approach_fraction = 0.05   # stop_approaching: price within 5 % of a stop
significant_move_fraction = 0.03  # significant_move: 3 % from the entry

[autonomy]                      # the daemon's graduated-autonomy governor (README "Operate")
initial_level = 1               # 1 recommend only | 2 supervised | 3 semi-autonomous (4 only by command)
calendar = "24/7"               # trading days and market hours: "24/7" (crypto) or "XNYS"
promote_l2_days = 30            # L1 -> L2 after this many trading days without a manual override ...
promote_l2_win_rate = 0.7       # ... and at least this win rate ...
promote_min_trades = 10         # ... over at least this many closed trades
promote_l3_days = 60            # L2 -> L3 after this many more trading days ...
promote_l3_sharpe = 1.5         # ... and a Sharpe ratio of daily returns above this
demote_losses = 3               # demote one level on this many losses ...
demote_loss_window = 5          # ... among the last this many trades (and on any override or anomaly)
override_commands = ["reject", "close", "flatten", "kill"]   # a person's commands that count as overrides
system_actors = ["system", "daemon", "governor"]             # actors whose commands are not overrides
recent_window = 20              # entries averaged for "the recent average size"
l2_size_multiple = 1.0          # L2 queues entries over this multiple of the average notional
l3_size_multiple = 2.0          # L3 queues entries over this multiple
human_size_multiple = 3.0       # any level: a person decides at this multiple
sector_losses = 3               # any level: a person decides after this many losses in a row in a sector
# sectors = { "BTC-USD" = "crypto-majors", "ETH-USD" = "crypto-majors" }   # default: each symbol its own
vix_jump = 0.3                  # any level: VIX up this fraction since the session's open
data_gap_seconds = 1800         # any level: no market data this long in market hours
margin_limit = 0.4              # any level: margin utilisation above this
min_confidence = 0.4            # any level: a decision less confident than this
fill_failures = 3               # any level: this many rejected orders in a row
regime_window = 20              # bars of the realised-volatility window ("a regime never seen")
regime_min_windows = 30         # earlier windows needed before a regime can be judged unseen
recent_decisions = 5            # recent decisions shown to the reasoner
cache_seconds = 1.0             # clock seconds the per-bar ledger figures are reused

[alerts]                        # where alerts go (every alert is also logged and in the ledger)
# email_host = "smtp.example.com"   # off without a host
email_port = 587
email_tls = "starttls"          # starttls | implicit | none
# email_username = "warden@example.com"
# email_from = "warden@example.com"
# email_to = ["me@example.com"]
email_min_level = "warning"     # info | warning | critical
slack_min_level = "warning"
# telegram_chat_ids = [123456789]   # only these chats get alerts and are obeyed by the bot
telegram_base_url = "https://api.telegram.org/bot"
telegram_min_level = "warning"
rate_limit_count = 5            # at most this many alerts per trigger ...
rate_limit_seconds = 3600       # ... per this many seconds
dedupe_seconds = 900            # the same alert again within this is not sent
timeout_seconds = 10.0          # per delivery attempt
# ca_file = "/etc/ssl/my-ca.pem"    # an extra CA for SMTP TLS and the webhook
# email_password, slack_webhook_url, telegram_bot_token: secrets, only from
# TRADEWARDEN_ALERTS__EMAIL_PASSWORD / __SLACK_WEBHOOK_URL / __TELEGRAM_BOT_TOKEN or secret files

[api]                           # the web dashboard and REST API (warden serve)
enabled = false                 # true: warden daemon start serves it too
host = "127.0.0.1"              # anything but loopback needs a token
port = 8080
token_name = "api"              # recorded as who acted through the API
cors_origins = []               # browser origins allowed to call the API (none: no CORS)
write_limit_per_minute = 30     # approve/reject/pause/resume calls per minute
# token: a secret, only from TRADEWARDEN_API__TOKEN or a secret file

[reasoning]                     # the agent's reasoning engine (README: "The reasoning layer (LLM)")
provider = "rules"              # rules (no model calls) | anthropic (key from ANTHROPIC_API_KEY)
# model = "claude-sonnet-5-5"   # decides; needs a price in [reasoning.prices]
# reflection_model = "claude-haiku-5-5"   # the daily reflection (cheaper)
# max_tokens = 2048             # output tokens per call, reasoning included
daily_cost_cap_usd = 5.0        # US dollars per UTC day; at the cap decisions fall to recommend-only
# alert_fraction = 0.8          # one warning alert a day at this share of the cap
# timeout_seconds = 10.0        # per HTTP request
# max_retries = 1               # the SDK's own retries
# deadline_seconds = 15.0       # the whole decision, retries included
# prices: USD per million tokens; built in for Claude Opus/Sonnet/Haiku 5.5, add others:
# [reasoning.prices."claude-opus-5"]
# input_per_mtok = 5.0
# output_per_mtok = 25.0
# cache_read_per_mtok = 0.5
# cache_write_per_mtok = 6.25   # 5-minute cache writes
# read_on = 2026-11-29
# source = "https://platform.claude.com/docs/en/about-claude/pricing"

[learning]                      # end-of-day experiments (README: "Learning"); p < 0.05 is fixed
experiments = true              # file, start and judge proposed experiments (false: reflect only)
min_samples = 20                # observations per arm before judging
min_effect = 0.25               # the variant's mean must beat the control's by this (pct points)
allocation = 0.5                # the variant's share of decisions unless a proposal says

[ml]                            # the ML pipeline (README: "ML pipeline"); days are NYSE sessions
model_name = "equity_rank"      # registered model name
# registry_uri = "http://mlflow:5000"   # default: sqlite mlflow.db beside the ledger
algorithm = "ridge"             # ridge | lightgbm
# ridge_alpha = 10.0            # ridge L2 penalty
# n_estimators = 200            # lightgbm boosting rounds
horizon_days = 5                # label: close[t+h] / close[t] - 1
train_years = 2.0               # training window, calendar years
# purge_days = 5                # sessions dropped before each test window (default: horizon_days; >= it)
embargo_days = 5                # sessions after each test window kept out of training
n_splits = 5                    # walk-forward validation splits
retrain_every_days = 5          # sessions between retrainings (backtest, daemon)
universe = []                   # tickers; empty: every symbol of the data
# data = "universe.csv"         # daily OHLCV with a symbol column; default: bundled AAPL/JPM/MSFT/NVDA/XOM 2012-2015
conversion = "rank"             # rank | threshold | zscore
top_n = 2
threshold = 0.0                 # predicted horizon return, a fraction
zscore = 1.0
weighting = "equal"             # equal | score
max_positions = 3
max_fraction = 0.4              # of equity per position
min_order_value = 100.0         # quote currency
psi_warning = 0.1               # population stability index per feature
psi_drift = 0.25
ks_pvalue = 0.01                # Kolmogorov-Smirnov p value below which a feature drifted
ic_floor = 0.0                  # rolling information coefficient floor
hit_rate_floor = 0.5
drift_persist_days = 3          # sessions of drift before a rollback is due
auto_rollback = false           # true: roll back automatically when due
# daemon = true                 # the daemon predicts after each close, checks drift daily, retrains weekly (needs [daemon] calendar = "XNYS")

# Several deployments in one file (warden daemon start runs them all); each entry may
# set the run keys and [venue]; the top level gives the defaults.
# [[deployments]]
# name = "btc-trend"
# symbols = ["BTC-USD"]
# [[deployments]]
# name = "eth-meanrev"
# strategy = "ema_rsi"
# symbols = ["ETH-USD"]
'''
