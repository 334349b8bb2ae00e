// A relying party built on coreos/go-oidc and golang.org/x/oauth2, run against a live aa-oidc
// server by gooidc.test.ts: what oauth2-proxy, Grafana-style and other Go sites do at sign-in.
//
// Built in GOPATH mode against Debian's sources (golang-github-coreos-go-oidc-dev,
// golang-golang-x-oauth2-dev, golang-golang-x-net-dev): nothing is downloaded. Reads its settings
// as one JSON object on stdin (never argv: it holds the client secret and the user's password):
//
//	{"issuer", "client_id", "client_secret", "redirect_uri", "username", "password", "scope"}
//
// and then does: discovery with go-oidc's strict issuer check (oidc.NewProvider), an authorization
// URL with PKCE (S256), state and nonce, the user's trip through the login and consent pages (the
// forms submitted as a browser without JavaScript does, with a cookie jar), the code taken from the
// redirect to redirect_uri (captured, never followed) with its state and iss checked, the code
// exchange with x/oauth2 (client_secret_basic), ID token verification with go-oidc's verifier
// (signature against the JWKS, iss, aud, exp) and the nonce and at_hash checks go-oidc leaves to
// the application, userinfo through provider.UserInfo with its subject checked against the ID
// token's, and a refresh through the token source x/oauth2 gives applications.
//
// Prints one JSON summary on stdout (claims and checks, never a token or secret). Exits non-zero
// with a message on stderr on any failure. Talks to loopback addresses only: its dialer refuses any
// other.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"time"

	oidc "github.com/coreos/go-oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

const timeout = 10 * time.Second

type settings struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	Scope        string `json:"scope"`
}

// failure is a step of the flow that did not go as a relying party expects.
type failure struct{ message string }

func (f failure) Error() string { return f.message }

func fail(format string, args ...interface{}) error {
	return failure{fmt.Sprintf(format, args...)}
}

// loopbackDialer refuses every address that is not a loopback one, whoever asks (go-oidc, x/oauth2
// or the browser), and proxies are never consulted.
func loopbackDialer() func(ctx context.Context, network, address string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fail("refusing to contact %q: this test talks to loopback addresses only", host)
		}
		return dialer.DialContext(ctx, network, address)
	}
}

func httpClient(jar http.CookieJar, followRedirects bool) *http.Client {
	client := &http.Client{
		Timeout:   timeout,
		Jar:       jar,
		Transport: &http.Transport{Proxy: nil, DialContext: loopbackDialer()},
	}
	if !followRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return client
}

func randomToken(size int) string {
	buffer := make([]byte, size)
	if _, err := rand.Read(buffer); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(buffer)
}

func equalStrings(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// form is the first form of a page: its action, method, named inputs and named buttons.
type form struct {
	action, method string
	inputs         map[string]input
	buttons        [][2]string
}

type input struct{ kind, value string }

func attribute(node *html.Node, name string) (string, bool) {
	for _, attr := range node.Attr {
		if attr.Key == name {
			return attr.Val, true
		}
	}
	return "", false
}

func firstForm(node *html.Node) *html.Node {
	if node.Type == html.ElementNode && node.Data == "form" {
		return node
	}
	for child := node.FirstChild; child != nil; child = child.NextSibling {
		if found := firstForm(child); found != nil {
			return found
		}
	}
	return nil
}

func parseForm(page []byte) (*form, error) {
	document, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return nil, err
	}
	element := firstForm(document)
	if element == nil {
		return nil, fail("expected a login or consent form, got a page without a form")
	}
	action, _ := attribute(element, "action")
	method, _ := attribute(element, "method")
	parsed := &form{action: action, method: strings.ToLower(method), inputs: map[string]input{}}
	var walk func(*html.Node)
	walk = func(node *html.Node) {
		if node.Type == html.ElementNode {
			name, named := attribute(node, "name")
			value, _ := attribute(node, "value")
			switch {
			case node.Data == "input" && named && name != "":
				kind, ok := attribute(node, "type")
				if !ok {
					kind = "text"
				}
				parsed.inputs[name] = input{kind: kind, value: value}
			case node.Data == "button" && named && name != "":
				parsed.buttons = append(parsed.buttons, [2]string{name, value})
			}
		}
		for child := node.FirstChild; child != nil; child = child.NextSibling {
			walk(child)
		}
	}
	walk(element)
	return parsed, nil
}

// signIn follows the provider's redirects and answers its forms; it returns the redirect to the
// client, which it does not follow.
func signIn(browser *http.Client, authorizeURL string, s settings, pages *[]string) (*url.URL, error) {
	origin, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, err
	}
	response, err := browser.Get(authorizeURL)
	if err != nil {
		return nil, err
	}
	for step := 0; step < 20; step++ {
		body, err := io.ReadAll(response.Body)
		response.Body.Close()
		if err != nil {
			return nil, err
		}
		if response.StatusCode >= 300 && response.StatusCode < 400 {
			location, err := response.Request.URL.Parse(response.Header.Get("Location"))
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(location.String(), s.RedirectURI) {
				return location, nil
			}
			if location.Scheme != origin.Scheme || location.Host != origin.Host {
				return nil, fail("redirected off the provider to %s", location.Host)
			}
			if response, err = browser.Get(location.String()); err != nil {
				return nil, err
			}
			continue
		}
		if response.StatusCode != http.StatusOK {
			return nil, fail("the provider answered %d at %s", response.StatusCode, response.Request.URL.Path)
		}
		page, err := parseForm(body)
		if err != nil {
			return nil, err
		}
		fields := url.Values{}
		hasPassword := false
		for name, field := range page.inputs {
			fields.Set(name, field.value)
			hasPassword = hasPassword || field.kind == "password"
		}
		if fields.Get("csrf_token") == "" {
			return nil, fail("the form carries no csrf_token")
		}
		allow := false
		for _, button := range page.buttons {
			allow = allow || button == [2]string{"decision", "allow"}
		}
		switch {
		case hasPassword:
			for _, seen := range *pages {
				if seen == "login" {
					return nil, fail("the login page came back: the password was refused")
				}
			}
			*pages = append(*pages, "login")
			fields.Set("username", s.Username)
			fields.Set("password", s.Password)
		case allow:
			*pages = append(*pages, "consent")
			fields.Set("decision", "allow")
		default:
			return nil, fail("a form that is neither the login nor the consent page")
		}
		if page.method != "post" {
			return nil, fail("the form is not submitted by POST")
		}
		action, err := response.Request.URL.Parse(page.action)
		if err != nil {
			return nil, err
		}
		if response, err = browser.PostForm(action.String(), fields); err != nil {
			return nil, err
		}
	}
	return nil, fail("the sign-in did not reach the redirect URI")
}

func jwtHeaderKid(token string) (string, error) {
	header, err := base64.RawURLEncoding.DecodeString(strings.SplitN(token, ".", 2)[0])
	if err != nil {
		return "", err
	}
	var fields struct {
		Kid string `json:"kid"`
	}
	err = json.Unmarshal(header, &fields)
	return fields.Kid, err
}

// forgeSignature flips one bit of the token's signature.
func forgeSignature(token string) string {
	parts := strings.Split(token, ".")
	signature, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(signature) == 0 {
		return token + "x"
	}
	signature[0] ^= 1
	parts[2] = base64.RawURLEncoding.EncodeToString(signature)
	return strings.Join(parts, ".")
}

func run(s settings) (map[string]interface{}, error) {
	for _, address := range []string{s.Issuer, s.RedirectURI} {
		if _, err := url.Parse(address); err != nil {
			return nil, err
		}
	}
	// go-oidc and x/oauth2 take their HTTP client from the context; no cookies on the back channel.
	ctx := oidc.ClientContext(context.Background(), httpClient(nil, true))

	// Refuses discovery that names another issuer than the one asked for, byte for byte.
	provider, err := oidc.NewProvider(ctx, s.Issuer)
	if err != nil {
		return nil, err
	}
	var metadata struct {
		CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&metadata); err != nil {
		return nil, err
	}
	offersS256 := false
	for _, method := range metadata.CodeChallengeMethods {
		offersS256 = offersS256 || method == "S256"
	}
	if !offersS256 {
		return nil, fail("discovery does not offer S256 PKCE")
	}

	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic, as the application is registered
	config := oauth2.Config{
		ClientID:     s.ClientID,
		ClientSecret: s.ClientSecret,
		Endpoint:     endpoint,
		RedirectURL:  s.RedirectURI,
		Scopes:       strings.Fields(s.Scope),
	}

	// This x/oauth2 (Debian's) has no PKCE helpers yet: the challenge goes in as parameters.
	state := randomToken(24)
	nonce := randomToken(24)
	verifier := randomToken(48)
	challenge := sha256.Sum256([]byte(verifier))
	authorizeURL := config.AuthCodeURL(state,
		oidc.Nonce(nonce),
		oauth2.SetAuthURLParam("code_challenge", base64.RawURLEncoding.EncodeToString(challenge[:])),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"),
	)

	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	pages := []string{}
	callback, err := signIn(httpClient(jar, false), authorizeURL, s, &pages)
	if err != nil {
		return nil, err
	}
	returned := callback.Query()
	if returned.Get("error") != "" {
		return nil, fail("authorization failed: %s", returned.Get("error"))
	}
	if !equalStrings(returned.Get("state"), state) {
		return nil, fail("the authorization response carries another state")
	}
	if returned.Get("iss") != s.Issuer {
		return nil, fail("the authorization response carries no iss of this issuer (RFC 9207)")
	}

	token, err := config.Exchange(ctx, returned.Get("code"), oauth2.SetAuthURLParam("code_verifier", verifier))
	if err != nil {
		return nil, err
	}
	rawIDToken, ok := token.Extra("id_token").(string)
	if !ok {
		return nil, fail("the token response carries no id_token")
	}

	idTokenVerifier := provider.Verifier(&oidc.Config{ClientID: s.ClientID})
	idToken, err := idTokenVerifier.Verify(ctx, rawIDToken)
	if err != nil {
		return nil, err
	}
	// go-oidc leaves the nonce to the application; at_hash it checks when asked.
	if !equalStrings(idToken.Nonce, nonce) {
		return nil, fail("the id_token carries another nonce")
	}
	if err := idToken.VerifyAccessToken(token.AccessToken); err != nil {
		return nil, err
	}
	var idClaims map[string]interface{}
	if err := idToken.Claims(&idClaims); err != nil {
		return nil, err
	}
	kid, err := jwtHeaderKid(rawIDToken)
	if err != nil {
		return nil, err
	}

	// The same verifier refuses a token for another audience, a forged signature and an expired
	// token: its checks are not vacuous.
	otherAudience := provider.Verifier(&oidc.Config{ClientID: s.ClientID + "-other"})
	_, wrongAudience := otherAudience.Verify(ctx, rawIDToken)
	_, forged := idTokenVerifier.Verify(ctx, forgeSignature(rawIDToken))
	afterExpiry := provider.Verifier(&oidc.Config{
		ClientID: s.ClientID,
		Now:      func() time.Time { return idToken.Expiry.Add(time.Second) },
	})
	_, expired := afterExpiry.Verify(ctx, rawIDToken)

	userinfo, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(token))
	if err != nil {
		return nil, err
	}
	if !equalStrings(userinfo.Subject, idToken.Subject) {
		return nil, fail("userinfo names another subject than the id_token")
	}
	var userinfoClaims map[string]interface{}
	if err := userinfo.Claims(&userinfoClaims); err != nil {
		return nil, err
	}

	var refreshed map[string]interface{}
	if token.RefreshToken != "" {
		// As an application does an hour later: the token source refreshes an expired access token
		// by itself, here when userinfo asks it for one.
		stale := *token
		stale.Expiry = time.Now().Add(-time.Minute)
		source := config.TokenSource(ctx, &stale)
		again, err := provider.UserInfo(ctx, source)
		if err != nil {
			return nil, err
		}
		renewed, err := source.Token()
		if err != nil {
			return nil, err
		}
		scope, _ := renewed.Extra("scope").(string)
		idTokenSubject := interface{}(nil)
		if raw, ok := renewed.Extra("id_token").(string); ok {
			renewedID, err := idTokenVerifier.Verify(ctx, raw)
			if err != nil {
				return nil, err
			}
			idTokenSubject = renewedID.Subject
		}
		refreshed = map[string]interface{}{
			"rotated":              renewed.RefreshToken != "" && renewed.RefreshToken != token.RefreshToken,
			"access_token_changed": renewed.AccessToken != token.AccessToken,
			"scope":                scope,
			"id_token_sub":         idTokenSubject,
			"userinfo_sub":         again.Subject,
		}
	}

	query, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, err
	}
	scope, _ := token.Extra("scope").(string)
	kept := map[string]interface{}{}
	for _, name := range []string{"iss", "aud", "sub", "azp", "acr"} {
		if value, ok := idClaims[name]; ok {
			kept[name] = value
		}
	}
	return map[string]interface{}{
		"pages":                     pages,
		"code_challenge_method":     query.Query().Get("code_challenge_method"),
		"state_checked":             true,
		"token_type":                token.TokenType,
		"scope":                     scope,
		"id_token_validated":        true,
		"id_token_kid":              kid,
		"id_token_claims":           kept,
		"nonce_checked":             true,
		"at_hash_checked":           idToken.AccessTokenHash != "",
		"wrong_audience_rejected":   wrongAudience != nil,
		"forged_signature_rejected": forged != nil,
		"expired_rejected":          expired != nil,
		"userinfo":                  userinfoClaims,
		"refreshed":                 refreshed,
	}, nil
}

func main() {
	var s settings
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "gooidc_flow: settings on stdin are not JSON")
		os.Exit(2)
	}
	summary, err := run(s)
	if err != nil {
		var retrieve *oauth2.RetrieveError
		var refused failure
		switch {
		case errors.As(err, &retrieve):
			// The token endpoint's error answer: its OAuth error code, never the request.
			var answer struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(retrieve.Body, &answer)
			fmt.Fprintf(os.Stderr, "gooidc_flow: the provider refused: %s (%s)\n", answer.Error, retrieve.Response.Status)
		case errors.As(err, &refused):
			fmt.Fprintf(os.Stderr, "gooidc_flow: %s\n", refused.message)
		default:
			fmt.Fprintf(os.Stderr, "gooidc_flow: %v\n", err)
		}
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(summary); err != nil {
		os.Exit(1)
	}
}
