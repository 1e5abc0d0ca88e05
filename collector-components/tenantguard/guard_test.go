package tenantguard

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// logs builds one resource per entry: resource tenant ("" for none), service, and the
// records' own tenants ("" for none).
type res struct {
	tenant, service string
	records         []string
}

func makeLogs(resources ...res) plog.Logs {
	ld := plog.NewLogs()
	for _, r := range resources {
		rl := ld.ResourceLogs().AppendEmpty()
		if r.tenant != "" {
			rl.Resource().Attributes().PutStr(tenantKey, r.tenant)
		}
		if r.service != "" {
			rl.Resource().Attributes().PutStr(serviceKey, r.service)
		}
		sl := rl.ScopeLogs().AppendEmpty()
		for _, t := range r.records {
			lr := sl.LogRecords().AppendEmpty()
			lr.Body().SetStr("line of " + t)
			if t != "" {
				lr.Attributes().PutStr(tenantKey, t)
			}
		}
	}
	return ld
}

func tenantsOf(ld plog.Logs) []string {
	var out []string
	for _, rl := range ld.ResourceLogs().All() {
		resource := ""
		if v, ok := rl.Resource().Attributes().Get(tenantKey); ok {
			resource = v.AsString()
		}
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if own, ok := lr.Attributes().Get(tenantKey); ok {
					out = append(out, own.AsString())
				} else {
					out = append(out, "r:"+resource)
				}
			}
		}
	}
	return out
}

func same(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func sameCounts(t *testing.T, got Dropped, want Dropped) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("dropped %v, want %v", got, want)
		}
	}
}

func TestATokenOfOneTenantWritesItsRecordsAndDropsAnothersKeepingTheRest(t *testing.T) {
	ld := makeLogs(
		res{tenant: "a", service: "erp", records: []string{"", "", "b"}},
		res{tenant: "b", service: "erp", records: []string{"", ""}},
		res{service: "erp", records: []string{"", "a"}},
	)
	dropped := Dropped{}
	Grant{TokenID: "t1", Tenants: []string{"a"}}.Logs(ld, dropped)
	same(t, tenantsOf(ld), []string{"r:a", "r:a", "r:a", "a"})
	sameCounts(t, dropped, Dropped{ReasonTenant: 3})
}

func TestATokenOfEveryTenantLeavesAMissingTenantToTheDefault(t *testing.T) {
	ld := makeLogs(res{service: "erp", records: []string{"", "x"}}, res{tenant: "y", records: []string{""}})
	dropped := Dropped{}
	Grant{TokenID: "all"}.Logs(ld, dropped)
	same(t, tenantsOf(ld), []string{"r:", "x", "r:y"})
	sameCounts(t, dropped, Dropped{})
}

func TestATokenOfSeveralTenantsAdmitsOnlyRecordsThatSayWhose(t *testing.T) {
	ld := makeLogs(res{service: "erp", records: []string{"", "a", "b", "c"}})
	dropped := Dropped{}
	Grant{Tenants: []string{"a", "b"}}.Logs(ld, dropped)
	same(t, tenantsOf(ld), []string{"a", "b"})
	sameCounts(t, dropped, Dropped{ReasonAmbiguous: 1, ReasonTenant: 1})
}

func TestAnEmptyTenantCountsAsNoneAndIsRemoved(t *testing.T) {
	ld := makeLogs(res{service: "erp", records: []string{""}})
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(tenantKey, "")
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().PutStr(tenantKey, "")
	Grant{Tenants: []string{"a"}}.Logs(ld, Dropped{})
	same(t, tenantsOf(ld), []string{"r:a"})
}

func TestATokenBoundToServicesAdmitsOnlyThemAndNotAResourceWithoutAName(t *testing.T) {
	ld := makeLogs(
		res{tenant: "a", service: "erp", records: []string{""}},
		res{tenant: "a", service: "pim", records: []string{"", ""}},
		res{tenant: "a", records: []string{""}},
	)
	dropped := Dropped{}
	Grant{Tenants: []string{"a"}, Services: []string{"erp"}}.Logs(ld, dropped)
	same(t, tenantsOf(ld), []string{"r:a"})
	sameCounts(t, dropped, Dropped{ReasonService: 3})
}

func TestSpansAreHeldLikeLogs(t *testing.T) {
	td := ptrace.NewTraces()
	for _, tenant := range []string{"a", "b"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(serviceKey, "erp")
		rs.Resource().Attributes().PutStr(tenantKey, tenant)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Spans().AppendEmpty().SetName("job")
		ss.Spans().AppendEmpty().Attributes().PutStr(tenantKey, "b")
	}
	dropped := Dropped{}
	Grant{Tenants: []string{"a"}}.Traces(td, dropped)
	if td.SpanCount() != 1 || td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name() != "job" {
		t.Fatalf("left %d spans", td.SpanCount())
	}
	sameCounts(t, dropped, Dropped{ReasonTenant: 3})
}

func TestDataPointsOfEveryKindAreHeldAndEmptyMetricsGo(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(serviceKey, "erp")
	sm := rm.ScopeMetrics().AppendEmpty()
	gauge := sm.Metrics().AppendEmpty()
	gauge.SetName("up")
	gauge.SetEmptyGauge().DataPoints().AppendEmpty().Attributes().PutStr(tenantKey, "a")
	gauge.Gauge().DataPoints().AppendEmpty().Attributes().PutStr(tenantKey, "b")
	sum := sm.Metrics().AppendEmpty()
	sum.SetName("calls")
	sum.SetEmptySum().DataPoints().AppendEmpty().Attributes().PutStr(tenantKey, "b")
	histogram := sm.Metrics().AppendEmpty()
	histogram.SetName("latency")
	histogram.SetEmptyHistogram().DataPoints().AppendEmpty()
	dropped := Dropped{}
	Grant{Tenants: []string{"a"}}.Metrics(md, dropped)
	if md.DataPointCount() != 2 || sm.Metrics().Len() != 2 {
		t.Fatalf("left %d points in %d metrics", md.DataPointCount(), sm.Metrics().Len())
	}
	if got, _ := rm.Resource().Attributes().Get(tenantKey); got.AsString() != "a" {
		t.Fatalf("resource tenant %q", got.AsString())
	}
	sameCounts(t, dropped, Dropped{ReasonTenant: 2})
}

func TestTheBucketLetsABurstThroughThenHoldsTheRate(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	l := newLimiter(100, 200)
	if ok, _ := l.take("t", 150, at); !ok {
		t.Fatal("the first request is within the burst")
	}
	if ok, _ := l.take("t", 150, at); !ok {
		t.Fatal("credit is left: the request goes in and takes the bucket into debt")
	}
	ok, wait := l.take("t", 1, at)
	if ok || wait < time.Second {
		t.Fatalf("in debt: refused with a wait of at least a second, got %v %v", ok, wait)
	}
	if ok, _ := l.take("other", 150, at); !ok {
		t.Fatal("each token has its own bucket")
	}
	if ok, _ := l.take("t", 1, at.Add(1100*time.Millisecond)); !ok {
		t.Fatal("100 items/s pay back a debt of 100 in a second")
	}
	if ok, _ := newLimiter(0, 0).take("t", 1_000_000, at); !ok {
		t.Fatal("rate 0 is no limit")
	}
}
