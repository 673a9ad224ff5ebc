package producer

import (
	"strconv"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
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

// streamGauges are the gauges of how full ENMESHED is, refreshed by a
// StreamWatch from the stream's info.
type streamGauges struct {
	bytes, maxBytes, messages, usedRatio prometheus.Gauge
}

func newStreamGauges(reg prometheus.Registerer) streamGauges {
	g := streamGauges{
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventmesh_stream_bytes",
			Help: "Bytes stored in ENMESHED."}),
		maxBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventmesh_stream_max_bytes",
			Help: "Size limit of ENMESHED (STREAM_MAX_BYTES; -1: none). When full, ingest answers 503."}),
		messages: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventmesh_stream_messages",
			Help: "Events stored in ENMESHED."}),
		usedRatio: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventmesh_stream_used_ratio",
			Help: "Used fraction of ENMESHED's size limit (by messages when it has only a message limit; 0 without limits)."}),
	}
	reg.MustRegister(g.bytes, g.maxBytes, g.messages, g.usedRatio)
	return g
}

func (g streamGauges) set(f streams.Fill) {
	g.bytes.Set(float64(f.Bytes))
	g.maxBytes.Set(float64(f.MaxBytes))
	g.messages.Set(float64(f.Messages))
	g.usedRatio.Set(f.Ratio)
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
