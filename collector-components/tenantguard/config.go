package tenantguard

import (
	"errors"
)

// Config of the b2c_tenant_guard processor.
type Config struct {
	// RatePerSecond is the items (spans, data points, log records) a token may send
	// per second, averaged; 0 turns the limit off. Burst is how many it may send at
	// once after a quiet spell (0: twice the rate).
	RatePerSecond float64 `mapstructure:"rate_per_second"`
	Burst         float64 `mapstructure:"burst"`
}

func createDefaultConfig() *Config {
	return &Config{RatePerSecond: 20000}
}

// Validate is called by the collector before the pipelines are built.
func (c *Config) Validate() error {
	if c.RatePerSecond < 0 || c.Burst < 0 {
		return errors.New("rate_per_second and burst must not be negative")
	}
	return nil
}

func (c *Config) burst() float64 {
	if c.Burst > 0 {
		return c.Burst
	}
	return 2 * c.RatePerSecond
}
