"""``[api]``: the web dashboard and REST API (``warden serve``, or started by the daemon).

Kept in a module of its own, importing only pydantic, so reading the configuration
stays fast.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["ApiSettings"]


class ApiSettings(BaseModel):
    """``[api]``: where the dashboard listens and who may use it.

    Parameters
    ----------
    enabled : bool
        ``warden daemon start`` also serves the dashboard and API (default ``False``;
        ``warden serve`` serves them whatever this says).
    host : str
        Address to listen on (default ``127.0.0.1``). Anything but a loopback address
        needs a token.
    port : int
        TCP port (default 8080).
    token : SecretStr or None
        The bearer token every API call must carry (``Authorization: Bearer ...``).
        A secret: from ``TRADEWARDEN_API__TOKEN`` or a secret file, never from the
        config file. Without one the server answers only on loopback.
    token_name : str
        Who the token stands for, recorded with every action taken through the API
        (default ``api``).
    cors_origins : tuple of str
        Origins allowed to call the API from a browser page of theirs (default none:
        no CORS headers).
    write_limit_per_minute : int
        State-changing calls allowed per minute (approve, reject, pause, resume),
        beyond which the API answers 429 (default 30).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    token: SecretStr | None = None
    token_name: str = Field("api", min_length=1, max_length=64)
    cors_origins: tuple[str, ...] = ()
    write_limit_per_minute: int = Field(30, ge=1)
