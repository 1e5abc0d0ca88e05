// Package ingestauth is the collector's door: an authenticator extension that lets an
// OTLP request in only with a live probe token of b2c-monitoring.
//
// Tokens live in Postgres (api_tokens, only the SHA-256 of a secret is stored). The
// extension keeps the live probe tokens in memory, reloads them every
// refresh_interval, and writes what it loaded to a cache file, so a collector that
// restarts while Postgres is down still knows its senders. Expiry is checked against
// the clock at each request, not at load time: a token ends on the second it expires.
//
// What a token may write (its tenants and services) travels with the request in
// client.Info.Auth; the tenantguard processor enforces it record by record.
package ingestauth // import "github.com/b2c-monitoring/collector-components/ingestauth"

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"time"
)

// Token is one live probe token. Nil Tenants or Services: any.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Tenants   []string   `json:"tenants"`
	Services  []string   `json:"services"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// Set is the live tokens by the SHA-256 of their secret.
type Set map[[sha256.Size]byte]Token

// Refusal is why a request was not let in; Reason is the counter's attribute value.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

var (
	errMissing   = &Refusal{"missing", "no probe token: send 'Authorization: Bearer <token>' (b2c admin tokens create --role probe)"}
	errMalformed = &Refusal{"malformed", "the authorization header is not 'Bearer <token>'"}
	errUnknown   = &Refusal{"unknown", "the probe token is unknown or revoked"}
)

// Authenticate finds the token of an Authorization header value as of now.
func (s Set) Authenticate(header string, now time.Time) (Token, error) {
	secret, err := bearer(header)
	if err != nil {
		return Token{}, err
	}
	token, ok := s[sha256.Sum256([]byte(secret))]
	if !ok {
		return Token{}, errUnknown
	}
	if token.ExpiresAt != nil && !now.Before(*token.ExpiresAt) {
		return Token{}, &Refusal{
			"expired",
			"the probe token " + token.Name + " expired at " + token.ExpiresAt.UTC().Format(time.RFC3339) +
				"; create a new one with b2c admin tokens create --role probe",
		}
	}
	return token, nil
}

func bearer(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", errMissing
	}
	scheme, secret, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", errMalformed
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return "", errMalformed
	}
	return secret, nil
}

// headerValue is the authorization header among a request's sources: gRPC metadata
// keys are lower case, HTTP header keys canonical.
func headerValue(sources map[string][]string) (string, error) {
	var values []string
	for key, v := range sources {
		if strings.EqualFold(key, "authorization") {
			values = append(values, v...)
		}
	}
	switch len(values) {
	case 0:
		return "", errMissing
	case 1:
		return values[0], nil
	default:
		// two tokens in one request could mean two tenants; refuse rather than pick one
		return "", &Refusal{"malformed", "more than one authorization header"}
	}
}

// equal reports whether two sets hold the same tokens (a reload that changed nothing
// is not worth a log line or a cache write).
func (s Set) equal(other Set) bool {
	if len(s) != len(other) {
		return false
	}
	for key, a := range s {
		b, ok := other[key]
		if !ok || a.ID != b.ID || a.Name != b.Name || !sameList(a.Tenants, b.Tenants) ||
			!sameList(a.Services, b.Services) || !sameTime(a.ExpiresAt, b.ExpiresAt) {
			return false
		}
	}
	return true
}

func sameList(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

var errNoTokens = errors.New("the probe tokens have not been loaded yet")
