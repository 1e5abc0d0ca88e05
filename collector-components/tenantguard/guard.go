// Package tenantguard is the collector processor that holds each OTLP request to what
// its probe token may write: its tenants and its services (b2c_ingest_auth puts them
// in the request's client.Info.Auth). It sits first in every pipeline, before the
// batch processor merges requests of different senders.
//
// Per resource (one service's records in a request), by the contract's rule that a
// record's own tenant.id wins over the resource's:
//
//   - service.name must be one of the token's services (a token bound to services
//     admits no resource without one);
//   - a resource tenant.id the token may not write drops the resource whole;
//   - no resource tenant.id: a token of one tenant writes it there, a token of every
//     tenant leaves it (the default tenant applies downstream), and a token of several
//     tenants admits only records that name their own;
//   - a record (span, data point, log record) whose own tenant.id the token may not
//     write is dropped, and the rest of the request goes on.
//
// An empty tenant.id counts as none, as it does in the processors, and is removed so
// that Elasticsearch's "record's own tenant wins" filter cannot see it either.
package tenantguard // import "github.com/b2c-monitoring/collector-components/tenantguard"

import (
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const (
	tenantKey  = "tenant.id"
	serviceKey = "service.name"

	ReasonTenant    = "tenant_not_allowed"
	ReasonService   = "service_not_allowed"
	ReasonAmbiguous = "tenant_ambiguous"
)

// Grant is what one token may write. Nil Tenants or Services: any.
type Grant struct {
	TokenID  string
	Tenants  []string
	Services []string
}

// Dropped counts the items dropped, by reason.
type Dropped map[string]int

func (d Dropped) add(reason string, n int) {
	if reason != "" && n > 0 {
		d[reason] += n
	}
}

func (g Grant) tenantAllowed(tenant string) bool {
	return g.Tenants == nil || slices.Contains(g.Tenants, tenant)
}

// ownTenant is a map's tenant.id; an empty one is removed and counts as none.
func ownTenant(attrs pcommon.Map) (string, bool) {
	v, ok := attrs.Get(tenantKey)
	if !ok {
		return "", false
	}
	if tenant := v.AsString(); tenant != "" {
		return tenant, true
	}
	attrs.Remove(tenantKey)
	return "", false
}

// admitResource decides a resource: a reason drops every record of it; otherwise
// needOwn says that each record must name its own tenant.
func (g Grant) admitResource(attrs pcommon.Map) (reason string, needOwn bool) {
	if g.Services != nil {
		v, ok := attrs.Get(serviceKey)
		if !ok || !slices.Contains(g.Services, v.AsString()) {
			return ReasonService, false
		}
	}
	if tenant, ok := ownTenant(attrs); ok {
		if !g.tenantAllowed(tenant) {
			return ReasonTenant, false
		}
		return "", false
	}
	switch {
	case g.Tenants == nil:
		return "", false
	case len(g.Tenants) == 1:
		attrs.PutStr(tenantKey, g.Tenants[0])
		return "", false
	default:
		return "", true
	}
}

// admitRecord decides one record of an admitted resource; "" keeps it.
func (g Grant) admitRecord(attrs pcommon.Map, needOwn bool) string {
	if tenant, ok := ownTenant(attrs); ok {
		if !g.tenantAllowed(tenant) {
			return ReasonTenant
		}
		return ""
	}
	if needOwn {
		return ReasonAmbiguous
	}
	return ""
}

// Traces drops in place what g may not write.
func (g Grant) Traces(td ptrace.Traces, dropped Dropped) {
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		reason, needOwn := g.admitResource(rs.Resource().Attributes())
		if reason != "" {
			for _, ss := range rs.ScopeSpans().All() {
				dropped.add(reason, ss.Spans().Len())
			}
			return true
		}
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(span ptrace.Span) bool {
				r := g.admitRecord(span.Attributes(), needOwn)
				dropped.add(r, 1)
				return r != ""
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
}

// Logs drops in place what g may not write.
func (g Grant) Logs(ld plog.Logs, dropped Dropped) {
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		reason, needOwn := g.admitResource(rl.Resource().Attributes())
		if reason != "" {
			for _, sl := range rl.ScopeLogs().All() {
				dropped.add(reason, sl.LogRecords().Len())
			}
			return true
		}
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(record plog.LogRecord) bool {
				r := g.admitRecord(record.Attributes(), needOwn)
				dropped.add(r, 1)
				return r != ""
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
}

// Metrics drops in place what g may not write; a metric left without data points
// goes too.
func (g Grant) Metrics(md pmetric.Metrics, dropped Dropped) {
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		reason, needOwn := g.admitResource(rm.Resource().Attributes())
		if reason != "" {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					dropped.add(reason, dataPoints(m))
				}
			}
			return true
		}
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				return g.metricPoints(m, needOwn, dropped) == 0
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
}

// metricPoints drops m's disallowed data points and answers how many are left.
func (g Grant) metricPoints(m pmetric.Metric, needOwn bool, dropped Dropped) int {
	check := func(attrs pcommon.Map) bool {
		r := g.admitRecord(attrs, needOwn)
		dropped.add(r, 1)
		return r != ""
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		points := m.Gauge().DataPoints()
		points.RemoveIf(func(p pmetric.NumberDataPoint) bool { return check(p.Attributes()) })
		return points.Len()
	case pmetric.MetricTypeSum:
		points := m.Sum().DataPoints()
		points.RemoveIf(func(p pmetric.NumberDataPoint) bool { return check(p.Attributes()) })
		return points.Len()
	case pmetric.MetricTypeHistogram:
		points := m.Histogram().DataPoints()
		points.RemoveIf(func(p pmetric.HistogramDataPoint) bool { return check(p.Attributes()) })
		return points.Len()
	case pmetric.MetricTypeExponentialHistogram:
		points := m.ExponentialHistogram().DataPoints()
		points.RemoveIf(func(p pmetric.ExponentialHistogramDataPoint) bool { return check(p.Attributes()) })
		return points.Len()
	case pmetric.MetricTypeSummary:
		points := m.Summary().DataPoints()
		points.RemoveIf(func(p pmetric.SummaryDataPoint) bool { return check(p.Attributes()) })
		return points.Len()
	}
	// a metric of no type carries nothing to attribute; the pipeline decides
	return 1
}

func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}
