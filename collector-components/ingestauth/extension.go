package ingestauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

// Attribute names of the auth data (client.Info.Auth) the tenantguard processor reads.
const (
	AttrTokenID    = "b2c.token.id"
	AttrTokenName  = "b2c.token.name"
	AttrTenants    = "b2c.tenants"  // []string; nil: every tenant
	AttrServices   = "b2c.services" // []string; nil: every service
	AttrUnverified = "b2c.unverified"
)

var componentType = component.MustNewType("b2c_ingest_auth")

// NewFactory is the factory of the b2c_ingest_auth extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(
		componentType,
		func() component.Config { return createDefaultConfig() },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			return newAuthenticator(cfg.(*Config), set)
		},
		component.StabilityLevelDevelopment,
	)
}

type authenticator struct {
	cfg     *Config
	logger  *zap.Logger
	tokens  atomic.Pointer[Set] // nil until a first load (from Postgres or the cache)
	loader  loader
	refused metric.Int64Counter
	stop    chan struct{}
	done    sync.WaitGroup
	now     func() time.Time
}

var _ extensionauth.Server = (*authenticator)(nil)

func newAuthenticator(cfg *Config, set extension.Settings) (*authenticator, error) {
	meter := set.MeterProvider.Meter("github.com/b2c-monitoring/collector-components/ingestauth")
	refused, err := meter.Int64Counter(
		"b2c.ingest.refused_requests",
		metric.WithDescription("OTLP requests refused at the door, by reason (missing, malformed, unknown, expired)"),
		metric.WithUnit("{request}"),
	)
	if err != nil {
		return nil, err
	}
	a := &authenticator{
		cfg:     cfg,
		logger:  set.Logger,
		loader:  loader{url: string(cfg.PostgresURL)},
		refused: refused,
		stop:    make(chan struct{}),
		now:     time.Now,
	}
	if _, err := meter.Int64ObservableGauge(
		"b2c.ingest.tokens",
		metric.WithDescription("live probe tokens known to the collector"),
		metric.WithUnit("{token}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if tokens := a.tokens.Load(); tokens != nil {
				o.Observe(int64(len(*tokens)))
			}
			return nil
		}),
	); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *authenticator) Start(ctx context.Context, _ component.Host) error {
	deadline := time.Now().Add(a.cfg.StartTimeout)
	for {
		err := a.refresh(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			a.startFromCache(err)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	a.done.Add(1)
	go a.refreshLoop()
	return nil
}

func (a *authenticator) startFromCache(loadErr error) {
	if a.cfg.CacheFile == "" {
		a.logger.Error("probe tokens not loaded; OTLP requests are answered UNAVAILABLE until they are", zap.Error(loadErr))
		return
	}
	set, err := readCache(a.cfg.CacheFile)
	if err != nil {
		a.logger.Error("probe tokens not loaded, nor their cache; OTLP requests are answered UNAVAILABLE until they are",
			zap.Error(loadErr), zap.NamedError("cache_error", err))
		return
	}
	a.tokens.Store(&set)
	a.logger.Warn("probe tokens taken from the cache file until Postgres answers",
		zap.String("cache_file", a.cfg.CacheFile), zap.Int("tokens", len(set)), zap.Error(loadErr))
}

func (a *authenticator) refreshLoop() {
	defer a.done.Done()
	ticker := time.NewTicker(a.cfg.RefreshInterval)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-a.stop:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.refresh(ctx)
		cancel()
		// one line when the source fails and one when it is back, not one a round
		if err != nil && !failing {
			a.logger.Warn("reloading probe tokens failed; the last loaded tokens stay in force", zap.Error(err))
		} else if err == nil && failing {
			a.logger.Info("probe tokens reloaded again")
		}
		failing = err != nil
	}
}

func (a *authenticator) refresh(ctx context.Context) error {
	set, err := a.loader.load(ctx)
	if err != nil {
		return err
	}
	if current := a.tokens.Load(); current != nil && current.equal(set) {
		return nil
	}
	a.tokens.Store(&set)
	if a.cfg.CacheFile != "" {
		if err := writeCache(a.cfg.CacheFile, set); err != nil {
			a.logger.Warn("writing the probe token cache failed", zap.String("cache_file", a.cfg.CacheFile), zap.Error(err))
		}
	}
	return nil
}

func (a *authenticator) Shutdown(context.Context) error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.done.Wait()
	a.loader.close()
	return nil
}

func (a *authenticator) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	header, err := headerValue(sources)
	if err == nil {
		tokens := a.tokens.Load()
		if tokens == nil {
			// Not a refusal: the sender must keep its data and retry, which only a
			// later answer (UNAVAILABLE from tenantguard) can tell it.
			return withAuth(ctx, authData{unverified: true}), nil
		}
		var token Token
		if token, err = tokens.Authenticate(header, a.now()); err == nil {
			return withAuth(ctx, authData{token: token}), nil
		}
	}
	reason := "unknown"
	var refusal *Refusal
	if errors.As(err, &refusal) {
		reason = refusal.Reason
	}
	a.refused.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	return ctx, err
}

func withAuth(ctx context.Context, data authData) context.Context {
	info := client.FromContext(ctx)
	info.Auth = data
	return client.NewContext(ctx, info)
}

type authData struct {
	token      Token
	unverified bool
}

func (d authData) GetAttribute(name string) any {
	switch name {
	case AttrTokenID:
		return d.token.ID
	case AttrTokenName:
		return d.token.Name
	case AttrTenants:
		return d.token.Tenants
	case AttrServices:
		return d.token.Services
	case AttrUnverified:
		return d.unverified
	}
	return nil
}

func (authData) GetAttributeNames() []string {
	return []string{AttrTokenID, AttrTokenName, AttrTenants, AttrServices, AttrUnverified}
}
