"""Auth: static bearer, Basic, SMART Backend Services (signed assertion, discovery, refresh)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir_fakes import BASE, oo

from cohort.errors import AuthError, ConfigError
from cohort.source.fhir.client import FhirClient
from cohort.source.fhir.settings import ServerSettings

TOKEN_URL = "https://auth.example.invalid/token"


def keypair(tmp_path, alg):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS384" \
        else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    return path, key.public_key()


def smart(tmp_path, alg="RS384", clock=None, **kw):
    path, pub = keypair(tmp_path, alg)
    s = ServerSettings.from_dict({"base_url": BASE, "auth": "smart-backend", "client_id": "cohort-app",
                                  "private_key_file": str(path), "key_id": "k1", "alg": alg, **kw}, "w")
    t = {"now": 1_700_000_000.0}
    c = FhirClient(s, sleep=lambda _: None, clock=clock or (lambda: t["now"]))
    return c, pub, t


def token_cb(store: list, lifetime=300):
    def cb(req):
        form = {k: v[0] for k, v in parse_qs(req.body).items()}
        store.append(form)
        return 200, {}, json.dumps({"access_token": f"at{len(store)}", "token_type": "bearer",
                                    "expires_in": lifetime})
    return cb


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
@responses.activate
def test_smart_backend_assertion_verifies(tmp_path, alg):
    forms: list[dict] = []
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb(forms))
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, pub, _ = smart(tmp_path, alg, token_url=TOKEN_URL, scope="system/Patient.rs")
    c.get_json("metadata", key="metadata")
    form = forms[0]
    assert form["grant_type"] == "client_credentials" and form["scope"] == "system/Patient.rs"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    tok = form["client_assertion"]
    hdr = jwt.get_unverified_header(tok)
    assert hdr["alg"] == alg and hdr["kid"] == "k1"
    claims = jwt.decode(tok, pub, algorithms=[alg], audience=TOKEN_URL,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "cohort-app"
    assert 0 < claims["exp"] - claims["iat"] <= 300 and claims["jti"]
    assert responses.calls[1].request.headers["Authorization"] == "Bearer at1"


@responses.activate
def test_token_endpoint_discovered_and_jti_unique(tmp_path):
    forms: list[dict] = []
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": TOKEN_URL})
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb(forms, lifetime=120))
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle"})
    c, _, t = smart(tmp_path)
    c.get_json("Patient", key="Patient")
    t["now"] += 100  # within the refresh margin of a 120 s token: refreshed before expiry
    c.get_json("Patient", key="Patient")
    assert len(forms) == 2
    jtis = {jwt.decode(f["client_assertion"], options={"verify_signature": False})["jti"] for f in forms}
    assert len(jtis) == 2
    assert c.stats.by_type["auth"].requests == 3  # discovery + 2 token requests


@responses.activate
def test_expired_token_mid_run_refreshes_once(tmp_path):
    forms: list[dict] = []
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb(forms, lifetime=3600))
    seen = []

    def cb(req):
        seen.append(req.headers["Authorization"])
        if req.headers["Authorization"] == "Bearer at1" and len(seen) > 1:
            return 401, {}, json.dumps(oo("token expired", "expired"))
        return 200, {}, json.dumps({"resourceType": "Bundle"})

    responses.add_callback(responses.GET, f"{BASE}/Patient", callback=cb)
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
    c.get_json("Patient", key="Patient")
    c.get_json("Patient", key="Patient")  # server revoked at1: one refresh, then success
    assert seen == ["Bearer at1", "Bearer at1", "Bearer at2"] and len(forms) == 2


@responses.activate
def test_token_refused_is_auth_error(tmp_path):
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "bad key"})
    responses.get(f"{BASE}/Patient", json={})
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
    with pytest.raises(AuthError, match="invalid_client|bad key"):
        c.get_json("Patient", key="Patient")


@responses.activate
def test_discovery_failure_is_auth_error(tmp_path):
    responses.get(f"{BASE}/.well-known/smart-configuration", status=404)
    c, _, _ = smart(tmp_path)
    with pytest.raises(AuthError, match="discovery"):
        c.get_json("Patient", key="Patient")


@responses.activate
def test_basic_auth_from_env(monkeypatch):
    monkeypatch.setenv("FHIR_USER", "svc")
    monkeypatch.setenv("FHIR_PASS", "pw")
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    s = ServerSettings.from_dict({"base_url": BASE, "auth": "basic", "username_env": "FHIR_USER",
                                  "password_env": "FHIR_PASS"}, "w")
    c = FhirClient(s)
    c.get_json("metadata", key="metadata")
    assert responses.calls[0].request.headers["Authorization"] == "Basic " + base64.b64encode(b"svc:pw").decode()
    assert "pw" not in repr(c.auth)


def test_missing_secret_is_config_error(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    s = ServerSettings.from_dict({"base_url": BASE, "auth": "bearer", "token_env": "NOPE"}, "w")
    with pytest.raises(ConfigError, match="NOPE"):
        FhirClient(s)


@responses.activate
def test_token_endpoint_down_is_retried_then_a_server_error(tmp_path):
    """A token endpoint that is down (connection refused, 503) failed the run at once with exit
    7, "renew the credentials", though nothing was wrong with them. It is now retried like the
    FHIR server, and in the end a ServerError (exit 6), not an AuthError."""
    import requests

    from cohort.errors import ServerError

    responses.post(TOKEN_URL, body=requests.ConnectionError("refused"))
    responses.post(TOKEN_URL, status=503, body="<html>down</html>")
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb([]))
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle"})
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
    c.get_json("Patient", key="Patient")  # third token request succeeds
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer at1"

    responses.replace(responses.POST, TOKEN_URL, status=503)
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL, max_retries=2)
    with pytest.raises(ServerError) as e:
        c.get_json("Patient", key="Patient")
    assert not isinstance(e.value, AuthError) and e.value.exit_code == 6
    assert str(e.value) == "token endpoint unavailable: HTTP 503 (after 3 attempts)"


@pytest.mark.parametrize("body", [["x"], "token", {"access_token": ["a"]}])
@responses.activate
def test_token_response_that_is_no_json_object_is_an_auth_error(tmp_path, body):
    """A token (or discovery) answer that is JSON but not an object crashed with AttributeError
    (exit 1)."""
    responses.post(TOKEN_URL, json=body)
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
    with pytest.raises(AuthError, match="no access_token"):
        c.get_json("Patient", key="Patient")
    responses.get(f"{BASE}/.well-known/smart-configuration", json=body)
    c, _, _ = smart(tmp_path)
    with pytest.raises(AuthError, match="no token_endpoint"):
        c.get_json("Patient", key="Patient")


@pytest.mark.parametrize("expires", ["soon", None, 0, -5, [1], True, "3600"])
@responses.activate
def test_odd_expires_in_is_read_safely(tmp_path, expires):
    """`expires_in` "soon" or a list crashed the run with ValueError/TypeError (exit 1); a
    negative one fetched a new token for every request. Anything but a positive number is
    now read as 300 s."""
    forms: list[dict] = []

    def cb(req):
        forms.append(req.body)
        return 200, {}, json.dumps({"access_token": "at", "expires_in": expires})

    responses.add_callback(responses.POST, TOKEN_URL, callback=cb)
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle"})
    c, _, t = smart(tmp_path, token_url=TOKEN_URL)
    c.get_json("Patient", key="Patient")
    t["now"] += 100
    c.get_json("Patient", key="Patient")
    assert len(forms) == 1  # one token serves both requests


@responses.activate
def test_token_endpoint_over_plain_http_is_refused(tmp_path):
    """A discovered (or configured) http:// token endpoint got the signed client assertion and
    sent the access token back in clear text; only https is used (plain http only where
    base_url may use it: a loopback host or allow_http)."""
    responses.get(f"{BASE}/.well-known/smart-configuration",
                  json={"token_endpoint": "http://auth.example.invalid/token"})
    c, _, _ = smart(tmp_path)
    with pytest.raises(AuthError, match="token_endpoint is no https URL"):
        c.get_json("Patient", key="Patient")
    assert all(call.request.method == "GET" for call in responses.calls)
    with pytest.raises(ConfigError, match="'token_url' must be an https URL"):
        smart(tmp_path, token_url="http://auth.example.invalid/token")
    smart(tmp_path, token_url="http://127.0.0.1:9/token")
    smart(tmp_path, token_url="http://auth.example.invalid/token", allow_http=True)


@responses.activate
def test_smart_assertion_is_accepted_by_a_server_whose_clock_is_a_minute_behind(tmp_path):
    """SMART Backend Services: the server refuses an assertion whose exp is more than 5 minutes
    after its own clock. exp = now + 300 was refused as soon as the machine's clock ran ahead
    of the server's, every night until someone fixed the clock."""
    forms: list[dict] = []
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb(forms))
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, pub, t = smart(tmp_path, token_url=TOKEN_URL)
    c.get_json("metadata", key="metadata")
    claims = jwt.decode(forms[0]["client_assertion"], pub, algorithms=["RS384"],
                        audience=TOKEN_URL, options={"verify_exp": False, "verify_iat": False})
    server_now = t["now"] - 60  # the server's clock, a minute behind this machine's
    assert claims["exp"] <= server_now + 300
    assert claims["exp"] > t["now"] + 60  # and still long enough to reach the server


def _loaded_server(tmp_path, monkeypatch, table: str):
    """The server settings of a config in tmp_path/etc whose [sites.server] is `table`, loaded
    and used from another working directory (cron's / or $HOME)."""
    from cohort.config import load_config, server_settings

    etc = tmp_path / "etc"
    (etc / "secrets").mkdir(parents=True)
    cfg = etc / "site.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "amr"\nsource = "{BASE}"\n'
                   f"[sites.server]\n{table}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_config(cfg)
    return server_settings(loaded.sites[0], loaded.path), etc / "secrets"


def test_a_relative_token_file_is_read_beside_the_config(tmp_path, monkeypatch):
    """`token_file = "secrets/token"` was read from the working directory: under cron, from
    $HOME or /, where there is no such file (exit 3 every night) or another one."""
    from cohort.source.fhir.auth import BearerAuth

    s, secrets = _loaded_server(tmp_path, monkeypatch, 'auth = "bearer"\ntoken_file = "secrets/token"')
    (secrets / "token").write_text("tok-123\n")
    assert BearerAuth(s).headers() == {"Authorization": "Bearer tok-123"}


def test_a_missing_relative_secret_file_is_named_where_it_was_looked_for(tmp_path, monkeypatch):
    """The message names the file looked for (beside the config), not the path as written;
    a value not written as a path (it may be the token itself) is still not quoted."""
    from cohort.source.fhir.auth import BasicAuth, SmartBackendAuth

    s, secrets = _loaded_server(tmp_path, monkeypatch, 'auth = "basic"\nusername = "u"\n'
                                'password_file = "./secrets/pw"')
    with pytest.raises(ConfigError) as e:
        BasicAuth(s)
    assert f"cannot read secret file {secrets / 'pw'}:" in str(e.value)
    s, _ = _loaded_server(tmp_path / "2", monkeypatch, 'auth = "smart-backend"\nclient_id = "c"\n'
                          'private_key_file = "MIIEvQIBADANBg"')
    with pytest.raises(ConfigError) as e:
        SmartBackendAuth(s, None)
    assert "MIIEvQIBADANBg" not in str(e.value) and "named in the config" in str(e.value)


CERT_BAD = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
NO_TLS = "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
CERT_SAID = ("the server's TLS certificate does not verify (set `ca_bundle` to the hospital's CA "
             "file if it uses its own)")
NO_TLS_SAID = "no TLS at that port (an http:// server named https://?)"


def ssl_error(url: str, text: str):
    import requests

    return requests.exceptions.SSLError(
        f"HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: {url} "
        f"(Caused by SSLError(SSLError(1, '{text}')))")


def _search_error(c):
    """The ServerError a search with client `c` ends in, and the back-off waits it slept."""
    from cohort.errors import ServerError

    waits: list[float] = []
    c.sleep = waits.append
    with pytest.raises(ServerError) as e:
        c.get_json("Patient?identifier=secret-mrn", key="Patient")
    return e.value, waits


@pytest.mark.parametrize(("text", "said"), [(CERT_BAD, CERT_SAID), (NO_TLS, NO_TLS_SAID)])
@responses.activate
def test_a_tls_failure_for_good_on_smart_discovery_fails_at_once(tmp_path, text, said):
    """QA: a certificate that does not verify (no `ca_bundle`) on SMART discovery was taken for
    a token endpoint down: retried max_retries times with back-offs, then "SMART discovery
    failed (SSLError) (after 6 attempts)". It fails at once, exit 6 as for the server itself."""
    well_known = f"{BASE}/.well-known/smart-configuration"
    responses.get(well_known, body=ssl_error("/r4/.well-known/smart-configuration", text))
    c, _, _ = smart(tmp_path)
    error, waits = _search_error(c)
    assert str(error) == f"SMART discovery: {said}"
    assert error.exit_code == 6 and not isinstance(error, AuthError)
    assert waits == [] and [call.request.url for call in responses.calls] == [well_known]


@pytest.mark.parametrize(("text", "said"), [(CERT_BAD, CERT_SAID), (NO_TLS, NO_TLS_SAID)])
@responses.activate
def test_a_tls_failure_for_good_on_the_token_endpoint_fails_at_once(tmp_path, text, said):
    responses.post(TOKEN_URL, body=ssl_error("/token", text))
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL)
    error, waits = _search_error(c)
    # the host named: a token endpoint is often another server than the FHIR server's
    assert str(error) == f"token endpoint (auth.example.invalid): {said}"
    assert error.exit_code == 6 and not isinstance(error, AuthError)
    assert waits == [] and [call.request.method for call in responses.calls] == ["POST"]


@responses.activate
def test_a_transient_tls_failure_on_discovery_or_the_token_endpoint_is_retried(tmp_path):
    from cohort.errors import ServerError

    eof = "EOF occurred in violation of protocol (_ssl.c:2427)"
    well_known = f"{BASE}/.well-known/smart-configuration"
    responses.get(well_known, body=ssl_error("/r4/.well-known/smart-configuration", eof))
    responses.get(well_known, json={"token_endpoint": TOKEN_URL})
    responses.post(TOKEN_URL, body=ssl_error("/token", eof))
    responses.add_callback(responses.POST, TOKEN_URL, callback=token_cb([]))
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle"})
    c, _, _ = smart(tmp_path)
    waits: list[float] = []
    c.sleep = waits.append
    c.get_json("Patient", key="Patient")
    # discovery cut off, discovery, token cut off, token, the search
    assert [call.request.method for call in responses.calls] == ["GET", "GET", "POST", "POST", "GET"]
    assert len(waits) == 2 and responses.calls[-1].request.headers["Authorization"] == "Bearer at1"

    responses.replace(responses.POST, TOKEN_URL, body=ssl_error("/token", eof))
    c, _, _ = smart(tmp_path, token_url=TOKEN_URL, max_retries=2)
    waits.clear()
    c.sleep = waits.append
    start = len(responses.calls)
    with pytest.raises(ServerError) as e:
        c.get_json("Patient", key="Patient")
    assert str(e.value) == "token endpoint unreachable (SSLError) (after 3 attempts)"
    assert len(responses.calls) - start == 3 and len(waits) == 2
