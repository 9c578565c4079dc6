"""FHIR source auth: none, static bearer, HTTP Basic, SMART Backend Services (private_key_jwt)."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cohort.errors import AuthError, ConfigError, ServerError

from .links import url_host
from .settings import ServerSettings, read_secret, shown_env
from .tls import tls_refused

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# seconds. SMART has the server refuse an exp more than 5 minutes after its own clock: 300 was
# refused whenever this machine's clock ran ahead of the server's; 240 leaves a minute of skew
ASSERTION_LIFETIME = 240
REFRESH_MARGIN = 60.0  # refresh a token this long before it expires


class TokenEndpointDown(ServerError):
    """The token endpoint (or SMART discovery) is unreachable or answered 429/5xx: a server
    problem the client retries like any other (exit 6 in the end), not a credentials one."""


def _unreachable(where: str, e: requests.RequestException, down: str) -> ServerError:
    """A TLS failure no retry mends as a plain ServerError, failing at once with exit 6 as the
    FHIR server's own does (a certificate is no credential: exit 7 says "renew them"); any
    other as TokenEndpointDown, retried."""
    why = tls_refused(e)
    if why is not None:
        return ServerError(f"{where}: {why}")
    return TokenEndpointDown(f"{down} ({type(e).__name__})")


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _json_object(r: requests.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# an OAuth error code (RFC 6749 5.2: invalid_client, invalid_grant, unauthorized_client, ...)
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_.-]{0,39}")


def _refusal(body: dict[str, Any]) -> str:
    """What a token endpoint's refusal may be quoted by: its `error` code when shaped as one,
    else "?"; "no access_token" for an answer with neither. Never `error_description`: an
    authorisation server may quote the client assertion, a token or a user there, and the
    message goes to stderr and run.json."""
    code = body.get("error")
    if code is None and "error_description" not in body:
        return "no access_token"
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "?"


def token_lifetime(value: object, default: float = 300.0) -> float:
    """Seconds from a token response's `expires_in`: a positive finite number (or numeric
    text); anything else (missing, 0, negative, "soon", a list) -> `default`."""
    if isinstance(value, bool):
        return default
    try:
        lifetime = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return lifetime if 0 < lifetime < float("inf") else default


class Auth(Protocol):
    """Adds credentials to request headers; `invalidate` forces a refresh on the next request."""

    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> bool: ...  # True when a retry with fresh credentials makes sense


class NoAuth:
    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NoAuth()"


class BearerAuth:
    """A static token from an env var or file; re-read on a 401 (the file may be rotated)."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._token = self._read()

    def _read(self) -> str:
        s = self._settings
        return read_secret(s.token_env, s.token_file, "bearer token", s.shown_file("token_file"))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        old, self._token = self._token, self._read()
        return bool(self._settings.token_file) or self._token != old

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


class BasicAuth:
    def __init__(self, settings: ServerSettings) -> None:
        user = settings.username or read_secret(settings.username_env, "", "basic auth username")
        password = read_secret(
            settings.password_env,
            settings.password_file,
            "basic auth password",
            settings.shown_file("password_file"),
        )
        raw = f"{user}:{password}".encode()
        self._value = "Basic " + base64.b64encode(raw).decode("ascii")

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "BasicAuth(<redacted>)"


class SmartBackendAuth:
    """SMART Backend Services: client_credentials grant with a signed JWT client assertion."""

    def __init__(
        self,
        settings: ServerSettings,
        session: requests.Session,
        *,
        clock: Callable[[], float] = time.time,
        on_request: Callable[[requests.Response | None, float], None] | None = None,
    ) -> None:
        self._s = settings
        self._session = session
        self._clock = clock
        self._on_request = on_request
        self._token = ""
        self._expires = 0.0
        self._margin = REFRESH_MARGIN
        self._lock = threading.Lock()
        self.token_url = settings.token_url
        path = Path(settings.private_key_file).expanduser()
        try:
            pem = path.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"smart-backend: cannot read private_key_file "
                f"{settings.shown_file('private_key_file')}: {e.strerror}"
            ) from None
        # checked now, not at the first token request: a public key there was exit 1 ("a bug"),
        # a key of the other kind than `alg` exit 7 ("renew the credentials"); both are config
        self._key = private_key(pem, settings.alg, settings.shown_file("private_key_file"))

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self._s.client_id!r}, token_url={self.token_url!r})"

    def _discover(self) -> str:
        url = self._s.base_url + "/.well-known/smart-configuration"
        try:
            r = self._session.get(
                url,
                headers={"Accept": "application/json"},
                timeout=self._s.timeout,
                verify=self._s.verify,
            )
        except requests.RequestException as e:
            raise _unreachable("SMART discovery", e, "SMART discovery failed") from None
        self._account(r)
        if r.status_code != 200:
            kind = TokenEndpointDown if _transient(r.status_code) else AuthError
            raise kind(
                f"SMART discovery: HTTP {r.status_code} from .well-known/smart-configuration"
                + ("" if kind is TokenEndpointDown else " (set token_url)")
            )
        endpoint = _json_object(r).get("token_endpoint")
        if not endpoint or not isinstance(endpoint, str):
            raise AuthError("SMART discovery: no token_endpoint in .well-known/smart-configuration")
        if not self._s.safe_token_url(endpoint):
            # the signed assertion goes there, and the access token comes back
            raise AuthError("SMART discovery: token_endpoint is no https URL (set token_url)")
        return endpoint

    def _account(self, r: requests.Response | None, t0: float | None = None) -> None:
        if self._on_request:
            self._on_request(r, 0.0 if t0 is None else time.monotonic() - t0)

    def assertion(self) -> str:
        """A fresh signed client assertion (unique jti, exp <= 5 min, aud = token URL)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._s.client_id,
            "sub": self._s.client_id,
            "aud": self.token_url,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"typ": "JWT", **({"kid": self._s.key_id} if self._s.key_id else {})}
        try:
            return jwt.encode(claims, self._key, algorithm=self._s.alg, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as e:
            raise AuthError(
                f"cannot sign client assertion with {self._s.alg}: {type(e).__name__}"
            ) from None

    def _fetch(self) -> None:
        if not self.token_url:
            self.token_url = self._discover()
        form = {
            "grant_type": "client_credentials",
            "scope": self._s.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        t0 = time.monotonic()
        try:
            r = self._session.post(
                self.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._s.timeout,
                verify=self._s.verify,
            )
        except requests.RequestException as e:
            # the host named: the token endpoint is often another server than the FHIR server
            where = f"token endpoint ({url_host(self.token_url)})"
            raise _unreachable(where, e, "token endpoint unreachable") from None
        self._account(r, t0)
        if _transient(r.status_code):
            raise TokenEndpointDown(f"token endpoint unavailable: HTTP {r.status_code}")
        body = _json_object(r)
        token = body.get("access_token")
        if r.status_code != 200 or not token or not isinstance(token, str):
            err = AuthError(f"token request refused: HTTP {r.status_code}: {_refusal(body)}")
            err.credentials_refused = True  # type: ignore[attr-defined]
            raise err
        self._token = token
        lifetime = token_lifetime(body.get("expires_in"))
        self._expires = self._clock() + lifetime
        self._margin = min(REFRESH_MARGIN, lifetime / 5)

    def headers(self) -> dict[str, str]:
        with self._lock:
            if not self._token or self._clock() >= self._expires - self._margin:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        with self._lock:
            self._token = ""
        return True


def private_key(pem: bytes, alg: str, shown: str) -> PrivateKey:
    """The PEM private key that signs with `alg` (RS384: RSA; ES384: EC P-384), else a
    ConfigError naming the file as `shown` and what is wrong, never quoting the file."""
    where = f"smart-backend: private_key_file {shown}"
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(f"{where} is encrypted: give a key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        public = b"PUBLIC KEY-----" in pem
        said = "holds a public key, not the private key" if public else "is no PEM private key"
        raise ConfigError(f"{where} {said}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        kind = "an RSA key"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        kind = f"an EC key (curve {key.curve.name})"
    else:
        kind = f"a {type(key).__name__.removeprefix('_')} key"
    if alg.startswith("RS") and not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{where} holds {kind}: alg = '{alg}' needs an RSA key")
    ok_ec = isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    if alg == "ES384" and not ok_ec:
        raise ConfigError(f"{where} holds {kind}: alg = 'ES384' needs an EC P-384 key")
    return key  # type: ignore[return-value]


def renew_hint(settings: ServerSettings) -> str:
    """What a 401 (or a refused token request) asks research IT to look at, by config key; no
    secret: the variable's or file's name only, as messages may quote them."""
    a = settings.auth
    if a == "smart-backend":
        ids = f"client_id '{settings.client_id}'" + (
            f", key_id '{settings.key_id}'" if settings.key_id else ""
        )
        return (
            f"the server refused the credentials (auth = {a}, {ids}): check them against the "
            "client and the public key (JWKS) registered at the EHR"
        )
    if a == "bearer":
        named = (
            f"token_env {shown_env(settings.token_env)}"
            if settings.token_env
            else f"token_file {settings.shown_file('token_file')}"
        )
    elif a == "basic":
        user = (
            f"username '{settings.username}'"
            if settings.username
            else f"username_env {shown_env(settings.username_env)}"
        )
        pw = (
            f"password_env {shown_env(settings.password_env)}"
            if settings.password_env
            else f"password_file {settings.shown_file('password_file')}"
        )
        named = f"{user}, {pw}"
    else:
        return "the server asks for credentials: set [sites.server] auth"
    return f"the server refused the credentials (auth = {a}, {named}): renew them"


def make_auth(
    settings: ServerSettings,
    session: requests.Session,
    *,
    clock: Callable[[], float] = time.time,
    on_request: Callable[[requests.Response | None, float], None] | None = None,
) -> Auth:
    """The Auth object for `settings.auth`; reads secrets now so a misconfiguration fails early."""
    if settings.auth == "bearer":
        return BearerAuth(settings)
    if settings.auth == "basic":
        return BasicAuth(settings)
    if settings.auth == "smart-backend":
        return SmartBackendAuth(settings, session, clock=clock, on_request=on_request)
    return NoAuth()
