package ingestauth

import (
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func setOf(secret string, token Token) Set {
	return Set{sha256.Sum256([]byte(secret)): token}
}

func reason(t *testing.T, err error) string {
	t.Helper()
	var refusal *Refusal
	if !errors.As(err, &refusal) {
		t.Fatalf("want a refusal, got %v", err)
	}
	return refusal.Reason
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Minute)
	set := setOf("b2c_live", Token{ID: "1", Name: "erp", Tenants: []string{"acme"}})
	for secret, token := range setOf("b2c_ending", Token{ID: "2", Name: "ending", ExpiresAt: &later}) {
		set[secret] = token
	}

	if token, err := set.Authenticate("Bearer b2c_live", now); err != nil || token.ID != "1" {
		t.Fatalf("live token: %v %v", token, err)
	}
	if _, err := set.Authenticate("bearer   b2c_live ", now); err != nil {
		t.Fatalf("the scheme is case-insensitive and spaces are trimmed: %v", err)
	}
	cases := map[string]struct {
		header string
		at     time.Time
		want   string
	}{
		"empty":         {"", now, "missing"},
		"no scheme":     {"b2c_live", now, "malformed"},
		"basic":         {"Basic YWRtaW46YWRtaW4=", now, "malformed"},
		"no secret":     {"Bearer ", now, "malformed"},
		"unknown":       {"Bearer b2c_other", now, "unknown"},
		"before expiry": {"Bearer b2c_ending", later.Add(-time.Nanosecond), ""},
		"at expiry":     {"Bearer b2c_ending", later, "expired"},
		"after expiry":  {"Bearer b2c_ending", later.Add(time.Hour), "expired"},
	}
	for name, c := range cases {
		_, err := set.Authenticate(c.header, c.at)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if got := reason(t, err); got != c.want {
			t.Errorf("%s: reason %q, want %q", name, got, c.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	if v, err := headerValue(map[string][]string{"authorization": {"Bearer x"}}); err != nil || v != "Bearer x" {
		t.Fatalf("gRPC metadata: %q %v", v, err)
	}
	if v, err := headerValue(map[string][]string{"Authorization": {"Bearer x"}, "Content-Type": {"a"}}); err != nil || v != "Bearer x" {
		t.Fatalf("HTTP header: %q %v", v, err)
	}
	if _, err := headerValue(map[string][]string{}); reason(t, err) != "missing" {
		t.Fatal("no header is missing")
	}
	if _, err := headerValue(map[string][]string{"authorization": {"Bearer a", "Bearer b"}}); reason(t, err) != "malformed" {
		t.Fatal("two tokens are refused")
	}
}

func TestCacheRoundTrip(t *testing.T) {
	expires := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	set := setOf("b2c_a", Token{ID: "1", Name: "a", Tenants: []string{"acme"}, Services: []string{"erp"}, ExpiresAt: &expires})
	for k, v := range setOf("b2c_b", Token{ID: "2", Name: "b"}) {
		set[k] = v
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := writeCache(path, set); err != nil {
		t.Fatal(err)
	}
	read, err := readCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if !read.equal(set) {
		t.Fatalf("read %v, wrote %v", read, set)
	}
	if token, err := read.Authenticate("Bearer b2c_b", time.Now()); err != nil || token.Tenants != nil {
		t.Fatalf("a token of every tenant stays one: %v %v", token, err)
	}
}
