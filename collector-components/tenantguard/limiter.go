package tenantguard

import (
	"sync"
	"time"
)

// bucket is a token bucket that may go into debt: a request is let in while the
// bucket holds any credit, and then pays for all its items. A batch larger than the
// burst still goes through (once), and the long-run rate stays at most rate.
type bucket struct {
	credit float64
	last   time.Time
}

// take lets n items in at now, or answers how long until credit is back.
func (b *bucket) take(n int, now time.Time, rate, burst float64) (bool, time.Duration) {
	if b.last.IsZero() {
		b.credit = burst
	} else if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.credit = min(burst, b.credit+elapsed*rate)
	}
	b.last = now
	if b.credit <= 0 {
		wait := time.Duration((-b.credit + 1) / rate * float64(time.Second))
		return false, max(wait, time.Second)
	}
	b.credit -= float64(n)
	return true, 0
}

// limiter holds a bucket per token id.
type limiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[string]*bucket
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

func (l *limiter) take(token string, n int, now time.Time) (bool, time.Duration) {
	if l.rate <= 0 || n == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[token]
	if !ok {
		b = &bucket{}
		l.buckets[token] = b
	}
	return b.take(n, now, l.rate, l.burst)
}
