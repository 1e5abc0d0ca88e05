package ingestauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// Only probe tokens write telemetry; an admin token is no sender's credential.
const liveProbeTokens = `SELECT id::text, name, token_hash, tenants, services, expires_at
FROM api_tokens WHERE revoked_at IS NULL AND role = 'probe'`

// loader reads the live probe tokens, keeping one connection between rounds.
type loader struct {
	url  string
	conn *pgx.Conn
}

func (l *loader) load(ctx context.Context) (Set, error) {
	if l.conn == nil || l.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, l.url)
		if err != nil {
			return nil, fmt.Errorf("connecting to Postgres: %w", err)
		}
		l.conn = conn
	}
	rows, err := l.conn.Query(ctx, liveProbeTokens)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("reading api_tokens: %w", err)
	}
	defer rows.Close()
	set := Set{}
	for rows.Next() {
		var (
			token Token
			hash  []byte
		)
		if err := rows.Scan(&token.ID, &token.Name, &hash, &token.Tenants, &token.Services, &token.ExpiresAt); err != nil {
			l.close()
			return nil, fmt.Errorf("reading api_tokens: %w", err)
		}
		if len(hash) != sha256.Size {
			continue // not a hash of ours; no secret can match it
		}
		set[[sha256.Size]byte(hash)] = token
	}
	if err := rows.Err(); err != nil {
		l.close()
		return nil, fmt.Errorf("reading api_tokens: %w", err)
	}
	return set, nil
}

func (l *loader) close() {
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.conn.Close(ctx)
		l.conn = nil
	}
}

type cachedToken struct {
	Hash string `json:"sha256"`
	Token
}

func writeCache(path string, set Set) error {
	entries := make([]cachedToken, 0, len(set))
	for hash, token := range set {
		entries = append(entries, cachedToken{hex.EncodeToString(hash[:]), token})
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path) // CreateTemp made it 0600
}

func readCache(path string) (Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries []cachedToken
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set := Set{}
	for _, entry := range entries {
		hash, err := hex.DecodeString(entry.Hash)
		if err != nil || len(hash) != sha256.Size {
			return nil, fmt.Errorf("%s: a token hash is not SHA-256 hex", path)
		}
		set[[sha256.Size]byte(hash)] = entry.Token
	}
	return set, nil
}
