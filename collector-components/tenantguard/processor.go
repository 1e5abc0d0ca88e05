package tenantguard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The auth data attributes b2c_ingest_auth sets (collector-components/ingestauth).
const (
	attrTokenID    = "b2c.token.id"
	attrTenants    = "b2c.tenants"
	attrServices   = "b2c.services"
	attrUnverified = "b2c.unverified"
)

var componentType = component.MustNewType("b2c_tenant_guard")

// NewFactory is the factory of the b2c_tenant_guard processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		componentType,
		func() component.Config { return createDefaultConfig() },
		processor.WithTraces(createTraces, component.StabilityLevelDevelopment),
		processor.WithMetrics(createMetrics, component.StabilityLevelDevelopment),
		processor.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

// One guard per pipeline, but one rate limit per token across signals: a token's
// budget is what it sends, whatever the signal.
var (
	limitersMu     sync.Mutex
	sharedLimiters = map[component.ID]*limiter{}
)

type guard struct {
	signal    string
	limit     *limiter
	rejected  metric.Int64Counter
	throttled metric.Int64Counter
	now       func() time.Time
}

func newGuard(set processor.Settings, cfg *Config, signal string) (*guard, error) {
	meter := set.MeterProvider.Meter("github.com/b2c-monitoring/collector-components/tenantguard")
	rejected, err := meter.Int64Counter(
		"b2c.ingest.rejected_items",
		metric.WithDescription("spans, data points and log records dropped because their token may not write them, by signal, reason and token id"),
		metric.WithUnit("{item}"),
	)
	if err != nil {
		return nil, err
	}
	throttled, err := meter.Int64Counter(
		"b2c.ingest.throttled_requests",
		metric.WithDescription("OTLP requests answered RESOURCE_EXHAUSTED (HTTP 429) for a token over its rate, by signal and token id"),
		metric.WithUnit("{request}"),
	)
	if err != nil {
		return nil, err
	}
	limitersMu.Lock()
	l, ok := sharedLimiters[set.ID]
	if !ok {
		l = newLimiter(cfg.RatePerSecond, cfg.burst())
		sharedLimiters[set.ID] = l
	}
	limitersMu.Unlock()
	return &guard{signal: signal, limit: l, rejected: rejected, throttled: throttled, now: time.Now}, nil
}

// admit is the request's grant, or the status the sender must get.
func (g *guard) admit(ctx context.Context, items int) (Grant, error) {
	auth := client.FromContext(ctx).Auth
	if auth == nil {
		return Grant{}, status.Error(codes.Unauthenticated,
			"this receiver checks no probe token: configure auth: {authenticator: b2c_ingest_auth} on it")
	}
	if unverified, _ := auth.GetAttribute(attrUnverified).(bool); unverified {
		return Grant{}, status.Error(codes.Unavailable,
			"the collector has not loaded the probe tokens yet (Postgres unreachable); retry later")
	}
	grant := Grant{}
	grant.TokenID, _ = auth.GetAttribute(attrTokenID).(string)
	grant.Tenants, _ = auth.GetAttribute(attrTenants).([]string)
	grant.Services, _ = auth.GetAttribute(attrServices).([]string)
	if ok, wait := g.limit.take(grant.TokenID, items, g.now()); !ok {
		g.throttled.Add(ctx, 1, metric.WithAttributes(
			attribute.String("signal", g.signal), attribute.String("token", grant.TokenID)))
		st := status.New(codes.ResourceExhausted, fmt.Sprintf(
			"probe token %s is over its rate of %.0f items/s; retry in %s", grant.TokenID, g.limit.rate, wait))
		if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			st = detailed
		}
		return Grant{}, st.Err()
	}
	return grant, nil
}

func (g *guard) count(ctx context.Context, grant Grant, dropped Dropped) {
	for reason, n := range dropped {
		g.rejected.Add(ctx, int64(n), metric.WithAttributes(
			attribute.String("signal", g.signal),
			attribute.String("reason", reason),
			attribute.String("token", grant.TokenID)))
	}
}

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	g, err := newGuard(set, cfg.(*Config), "traces")
	if err != nil {
		return nil, err
	}
	return processorhelper.NewTraces(ctx, set, cfg, next,
		func(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
			grant, err := g.admit(ctx, td.SpanCount())
			if err != nil {
				return td, err
			}
			dropped := Dropped{}
			grant.Traces(td, dropped)
			g.count(ctx, grant, dropped)
			if td.ResourceSpans().Len() == 0 {
				return td, processorhelper.ErrSkipProcessingData
			}
			return td, nil
		},
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}

func createMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	g, err := newGuard(set, cfg.(*Config), "metrics")
	if err != nil {
		return nil, err
	}
	return processorhelper.NewMetrics(ctx, set, cfg, next,
		func(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
			grant, err := g.admit(ctx, md.DataPointCount())
			if err != nil {
				return md, err
			}
			dropped := Dropped{}
			grant.Metrics(md, dropped)
			g.count(ctx, grant, dropped)
			if md.ResourceMetrics().Len() == 0 {
				return md, processorhelper.ErrSkipProcessingData
			}
			return md, nil
		},
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	g, err := newGuard(set, cfg.(*Config), "logs")
	if err != nil {
		return nil, err
	}
	return processorhelper.NewLogs(ctx, set, cfg, next,
		func(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
			grant, err := g.admit(ctx, ld.LogRecordCount())
			if err != nil {
				return ld, err
			}
			dropped := Dropped{}
			grant.Logs(ld, dropped)
			g.count(ctx, grant, dropped)
			if ld.ResourceLogs().Len() == 0 {
				return ld, processorhelper.ErrSkipProcessingData
			}
			return ld, nil
		},
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}
