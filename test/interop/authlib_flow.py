"""A relying party built on Python authlib, run against a live aa-oidc server by authlib.test.ts.

Reads its settings as one JSON object on stdin (never argv: it holds the client secret and the
user's password):

    {"issuer", "client_id", "client_secret", "redirect_uri", "username", "password", "scope"}

and then does what a Django or Flask site using authlib does: discovery, an authorization URL with
PKCE (S256) and a nonce, the user's trip through the login and consent pages (driven here with
requests and html.parser, the way a browser without JavaScript submits the forms), the code taken
from the redirect to redirect_uri (captured, never followed), the code exchange with the verifier,
id_token validation with authlib.jose against the provider's JWKS (signature, iss, aud, exp, nonce,
at_hash), userinfo with the access token, and a refresh (which authlib sends with the session's
scope again).

Prints one JSON summary on stdout (claims and checks, never a token or secret). Exits non-zero with
a message on stderr on any failure. Talks to loopback addresses only.
"""

import base64
import hashlib
import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import BadSignatureError, InvalidClaimError
from authlib.oidc.core import CodeIDToken

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TIMEOUT = 10


class Failure(Exception):
    """A step of the flow that did not go as a relying party expects."""


def loopback_only(url):
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise Failure(f"refusing to contact {host!r}: this test talks to loopback addresses only")
    return url


class FormParser(HTMLParser):
    """The first form of a page: its action, method, input fields and submit buttons."""

    def __init__(self):
        super().__init__()
        self.form = None
        self.inputs = {}
        self.buttons = []
        self._done = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if self._done:
            return
        if tag == "form" and self.form is None:
            self.form = {
                "action": attributes.get("action", ""),
                "method": attributes.get("method", "get").lower(),
            }
        elif self.form is not None and tag == "input" and attributes.get("name"):
            self.inputs[attributes["name"]] = {
                "type": attributes.get("type", "text"),
                "value": attributes.get("value") or "",
            }
        elif self.form is not None and tag == "button" and attributes.get("name"):
            self.buttons.append((attributes["name"], attributes.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form" and self.form is not None:
            self._done = True


def parse_form(html):
    parser = FormParser()
    parser.feed(html)
    if parser.form is None:
        raise Failure("expected a login or consent form, got a page without a form")
    return parser


def at_hash(access_token):
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def sign_in(browser, authorize_url, redirect_uri, username, password, pages):
    """Follows the provider's redirects and answers its forms; returns the redirect to the client."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    response = browser.get(loopback_only(authorize_url), allow_redirects=False, timeout=TIMEOUT)
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["location"])
            if location.startswith(redirect_uri):
                return location
            if not location.startswith(origin):
                raise Failure(f"redirected off the provider to {urlsplit(location).netloc}")
            response = browser.get(loopback_only(location), allow_redirects=False, timeout=TIMEOUT)
            continue
        if response.status_code != 200:
            raise Failure(f"the provider answered {response.status_code} at {urlsplit(response.url).path}")
        form = parse_form(response.text)
        fields = {name: field["value"] for name, field in form.inputs.items()}
        if "csrf_token" not in fields or not fields["csrf_token"]:
            raise Failure("the form carries no csrf_token")
        if any(field["type"] == "password" for field in form.inputs.values()):
            if "login" in pages:
                raise Failure("the login page came back: the password was refused")
            pages.append("login")
            fields["username"] = username
            fields["password"] = password
        elif ("decision", "allow") in form.buttons:
            pages.append("consent")
            fields["decision"] = "allow"
        else:
            raise Failure("a form that is neither the login nor the consent page")
        if form.form["method"] != "post":
            raise Failure("the form is not submitted by POST")
        action = urljoin(response.url, form.form["action"])
        response = browser.post(loopback_only(action), data=fields, allow_redirects=False, timeout=TIMEOUT)
    raise Failure("the sign-in did not reach the redirect URI")


def main():
    settings = json.load(sys.stdin)
    issuer = settings["issuer"]
    redirect_uri = settings["redirect_uri"]
    loopback_only(issuer)
    loopback_only(redirect_uri)

    browser = requests.Session()
    browser.trust_env = False  # no proxy from the environment: loopback only, directly

    metadata = browser.get(
        loopback_only(issuer + "/.well-known/openid-configuration"), timeout=TIMEOUT
    ).json()
    if metadata["issuer"] != issuer:
        raise Failure("discovery names another issuer")
    if "S256" not in metadata.get("code_challenge_methods_supported", []):
        raise Failure("discovery does not offer S256 PKCE")
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        loopback_only(metadata[endpoint])

    client = OAuth2Session(
        client_id=settings["client_id"],
        client_secret=settings["client_secret"],
        scope=settings["scope"],
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    client.trust_env = False
    code_verifier = generate_token(48)
    nonce = generate_token(20)
    authorize_url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )
    sent = parse_qs(urlsplit(authorize_url).query)
    if sent.get("code_challenge_method") != ["S256"] or "code_challenge" not in sent:
        raise Failure("authlib built no S256 code challenge")

    pages = []
    callback = sign_in(
        browser, authorize_url, redirect_uri, settings["username"], settings["password"], pages
    )
    returned = parse_qs(urlsplit(callback).query)
    if "error" in returned:
        raise Failure(f"authorization failed: {returned['error'][0]}")
    if returned.get("iss") != [issuer]:
        raise Failure("the authorization response carries no iss of this issuer (RFC 9207)")

    token = client.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=code_verifier,
        timeout=TIMEOUT,
    )

    jwks = browser.get(loopback_only(metadata["jwks_uri"]), timeout=TIMEOUT).json()
    key_set = JsonWebKey.import_key_set(jwks)
    jwt = JsonWebToken(["RS256"])

    def validate(id_token, expected_nonce):
        claims = jwt.decode(
            id_token,
            key_set,
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": issuer}},
            claims_params={
                "nonce": expected_nonce,
                "client_id": settings["client_id"],
                "access_token": token["access_token"],
            },
        )
        claims.validate()
        return claims

    id_claims = validate(token["id_token"], nonce)
    if id_claims.get("at_hash") != at_hash(token["access_token"]):
        raise Failure("at_hash does not match the access token")

    # The same checks refuse a wrong nonce and a forged signature: they are not vacuous.
    nonce_mismatch_rejected = False
    try:
        validate(token["id_token"], nonce + "x")
    except InvalidClaimError:
        nonce_mismatch_rejected = True
    header, payload, signature = token["id_token"].split(".")
    forged = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    forged[0] ^= 1
    forged_signature = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode("ascii")
    forged_signature_rejected = False
    try:
        validate(f"{header}.{payload}.{forged_signature}", nonce)
    except BadSignatureError:
        forged_signature_rejected = True

    response = client.get(loopback_only(metadata["userinfo_endpoint"]), timeout=TIMEOUT)
    if response.status_code != 200:
        raise Failure(f"userinfo answered {response.status_code}")
    userinfo = response.json()

    refreshed = None
    if token.get("refresh_token"):
        before = token["refresh_token"]
        # authlib sends the session's scope again with a refresh: the scope it sent, from the request.
        refresh_bodies = []
        client.hooks["response"].append(lambda response, **_: refresh_bodies.append(response.request.body))
        new = client.refresh_token(metadata["token_endpoint"], refresh_token=before, timeout=TIMEOUT)
        refreshed = {
            "rotated": bool(new.get("refresh_token")) and new["refresh_token"] != before,
            "access_token_changed": new["access_token"] != token["access_token"],
            "sent_scope": form_value(refresh_bodies[-1], "scope") if refresh_bodies else None,
            "scope": new.get("scope"),
        }

    print(
        json.dumps(
            {
                "authlib": __import__("authlib").__version__,
                "pages": pages,
                "code_challenge_method": sent["code_challenge_method"][0],
                "token_type": token.get("token_type"),
                "scope": token.get("scope"),
                "id_token_validated": True,
                "id_token_kid": jwt_header_kid(token["id_token"]),
                "id_token_claims": {
                    name: id_claims.get(name)
                    for name in ("iss", "aud", "sub", "azp", "acr")
                    if name in id_claims
                },
                "nonce_checked": id_claims.get("nonce") == nonce,
                "at_hash_checked": "at_hash" in id_claims,
                "nonce_mismatch_rejected": nonce_mismatch_rejected,
                "forged_signature_rejected": forged_signature_rejected,
                "userinfo": userinfo,
                "refreshed": refreshed,
            }
        )
    )


def form_value(body, name):
    """One field of a form-encoded request body (str or bytes), or None."""
    if isinstance(body, bytes):
        body = body.decode("ascii")
    return parse_qs(body or "").get(name, [None])[0]


def jwt_header_kid(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


if __name__ == "__main__":
    try:
        main()
    except Failure as failure:
        print(f"authlib_flow: {failure}", file=sys.stderr)
        sys.exit(1)
    except OAuthError as error:
        print(f"authlib_flow: the provider refused: {error.error}: {error.description}", file=sys.stderr)
        sys.exit(1)
    except requests.RequestException as error:
        print(f"authlib_flow: HTTP failure: {type(error).__name__}", file=sys.stderr)
        sys.exit(1)
