package producer

import (
	"strconv"

	"github.com/eventmesh/eventmesh/router"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the producer's Prometheus metrics. Namespace labels go
// through router.MetricLabel, so data cannot grow their cardinality.
type Metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
}

// NewMetrics registers the producer's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventmesh_ingest_requests_total",
			Help: "Ingest HTTP requests by status code.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventmesh_ingest_events_total",
			Help: "Events received by ingest, by namespace and result (published, duplicate, error).",
		}, []string{"namespace", "result"}),
	}
	reg.MustRegister(m.requests, m.events)
	return m
}

func (m *Metrics) request(status int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(status)).Inc()
}

func (m *Metrics) event(namespace string, res Result, err error) {
	if m == nil {
		return
	}
	result := "published"
	switch {
	case err != nil:
		result = "error"
	case res.Duplicate:
		result = "duplicate"
	}
	m.events.WithLabelValues(router.MetricLabel(namespace), result).Inc()
}
