package ingestauth

import (
	"errors"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
)

// Config of the b2c_ingest_auth extension.
type Config struct {
	// PostgresURL reaches the api_tokens table (a role that may read it is enough).
	PostgresURL configopaque.String `mapstructure:"postgres_url"`
	// RefreshInterval bounds how long a new, revoked or changed token takes to count.
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`
	// StartTimeout is how long Start waits for a first load before it falls back to
	// the cache file.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// CacheFile keeps the last loaded tokens (hashes only) across restarts; empty: none.
	CacheFile string `mapstructure:"cache_file"`
}

func createDefaultConfig() *Config {
	return &Config{RefreshInterval: 2 * time.Second, StartTimeout: 10 * time.Second}
}

func (c *Config) Validate() error {
	if c.PostgresURL == "" {
		return errors.New("postgres_url is required")
	}
	if c.RefreshInterval <= 0 {
		return errors.New("refresh_interval must be positive")
	}
	if c.StartTimeout < 0 {
		return errors.New("start_timeout must not be negative")
	}
	return nil
}
