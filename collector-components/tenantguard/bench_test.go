package tenantguard

// go test -run x -bench . : the guard's own cost, per request of 200 spans

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func BenchmarkTracesOfOneTenant(b *testing.B) {
	grant := Grant{TokenID: "t", Tenants: []string{"acme"}}
	build := func() ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(serviceKey, "erp-connector")
		ss := rs.ScopeSpans().AppendEmpty()
		for range 200 {
			s := ss.Spans().AppendEmpty()
			s.Attributes().PutStr("http.route", "/orders")
		}
		return td
	}
	for b.Loop() {
		b.StopTimer()
		td := build()
		b.StartTimer()
		grant.Traces(td, Dropped{})
	}
}
