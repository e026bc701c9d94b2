"""``[alerts]``: where the daemon's alerts go (:class:`AlertSettings`), apart from the
alerter itself (:mod:`tradewarden.ops.alerts`) so that loading the settings does not
import the SMTP, HTTP and Telegram machinery."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_settings import NoDecode

__all__ = ["LEVELS", "TELEGRAM_API", "TELEGRAM_LIMIT", "TRIGGERS", "AlertSettings"]

#: Alert levels, lowest first.
LEVELS = ("info", "warning", "critical")
#: The triggers the daemon raises (others are accepted too); see the module docstring.
TRIGGERS = ("human_review", "anomaly", "autonomy_demoted", "autonomy_promoted",
            "reasoning_error", "broker_disconnect", "cost_cap", "end_of_day", "daemon_error",
            "emergency_stop")
#: The official Bot API prefix: requests go to ``{base_url}{token}/{method}``.
TELEGRAM_API = "https://api.telegram.org/bot"
#: Longest text of one Telegram message, characters (Bot API ``sendMessage``: "1-4096
#: characters after entities parsing").
TELEGRAM_LIMIT = 4096
#: Longest subject kept in an e-mail header / first line, characters.
_SUBJECT_MAX = 200

_TRIGGER = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
Level = Literal["info", "warning", "critical"]


def _comma_list(value: Any) -> Any:
    """Accept ``"a,b"`` (an environment variable) as well as a list."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


class AlertSettings(BaseModel):
    """``[alerts]``: where alerts go, from which level, and how often.

    A channel is on when it is configured: e-mail when ``email_host`` and ``email_to``
    are set, Slack when ``slack_webhook_url`` is, Telegram when ``telegram_bot_token``
    and ``telegram_chat_ids`` are (the Telegram bot obeys those same chat ids).

    Parameters
    ----------
    email_host : str or None
        SMTP server; ``None`` (the default) leaves e-mail off.
    email_port : int
        SMTP port: 587 (STARTTLS, the default), 465 (implicit TLS), 25.
    email_tls : {"starttls", "implicit", "none"}
        ``starttls`` upgrades the connection (RFC 3207) and refuses a server that does
        not offer it; ``implicit`` speaks TLS from the start (RFC 8314); ``none`` sends
        in clear text (a relay on loopback).
    email_username : str or None
        Log in with this user (after TLS) when set.
    email_password : SecretStr or None
        Its password (``TRADEWARDEN_ALERTS__EMAIL_PASSWORD`` or a secret file).
    email_from : str or None
        Sender address; default ``email_username``, else ``tradewarden@<host>``.
    email_to : tuple of str
        Recipients (a list, or ``"a@x.org,b@x.org"``).
    email_min_level : {"info", "warning", "critical"}
        Least level mailed (default ``warning``).
    slack_webhook_url : SecretStr or None
        A Slack incoming-webhook URL (it is a credential: secret).
    slack_min_level : {"info", "warning", "critical"}
        Least level posted to Slack (default ``warning``).
    telegram_bot_token : SecretStr or None
        The bot's token from @BotFather.
    telegram_chat_ids : tuple of int
        Chats that receive alerts and whose commands the bot obeys (a list, or ``"1,2"``);
        a group's id is negative.
    telegram_base_url : str
        Bot API prefix (default :data:`TELEGRAM_API`); a test points it at a fake.
    telegram_min_level : {"info", "warning", "critical"}
        Least level sent to Telegram (default ``warning``).
    rate_limit_count : int
        Most alerts of one trigger sent per ``rate_limit_seconds`` (default 5).
    rate_limit_seconds : int
        The rate-limit window, clock seconds (default 3600).
    dedupe_seconds : int
        A duplicate within this many clock seconds of the last one sent is suppressed
        (default 900); 0 turns de-duplication off.
    timeout_seconds : float
        Network timeout of one delivery attempt, seconds (default 10).
    ca_file : str or None
        An extra CA bundle (PEM) trusted for the SMTP server's and the webhook's TLS
        certificates (a private relay); default the system's CAs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    email_host: str | None = None
    email_port: int = Field(587, ge=1, le=65535)
    email_tls: Literal["starttls", "implicit", "none"] = "starttls"
    email_username: str | None = None
    email_password: SecretStr | None = None
    email_from: str | None = None
    email_to: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)] = ()
    email_min_level: Level = "warning"
    slack_webhook_url: SecretStr | None = None
    slack_min_level: Level = "warning"
    telegram_bot_token: SecretStr | None = None
    telegram_chat_ids: Annotated[tuple[int, ...], NoDecode, BeforeValidator(_comma_list)] = ()
    telegram_base_url: str = TELEGRAM_API
    telegram_min_level: Level = "warning"
    rate_limit_count: int = Field(5, ge=1)
    rate_limit_seconds: int = Field(3600, ge=1)
    dedupe_seconds: int = Field(900, ge=0)
    timeout_seconds: float = Field(10.0, gt=0)
    ca_file: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AlertSettings:
        if self.email_host and not self.email_to:
            raise ValueError("alerts.email_host is set but alerts.email_to is empty: "
                             "give the recipients")
        if self.email_password is not None and not self.email_username:
            raise ValueError("alerts.email_password is set without alerts.email_username")
        if self.telegram_bot_token is not None and not self.telegram_chat_ids:
            raise ValueError("alerts.telegram_bot_token is set but alerts.telegram_chat_ids "
                             "is empty: give the chat ids to alert (and obey)")
        return self

    def channels(self) -> dict[str, str]:
        """Return the configured channels and their minimum levels.

        Returns
        -------
        dict
            ``{"email": level, "slack": level, "telegram": level}``, configured ones only.
        """
        out: dict[str, str] = {}
        if self.email_host and self.email_to:
            out["email"] = self.email_min_level
        if self.slack_webhook_url is not None:
            out["slack"] = self.slack_min_level
        if self.telegram_bot_token is not None and self.telegram_chat_ids:
            out["telegram"] = self.telegram_min_level
        return out
