package consumers

import (
	"github.com/eventmesh/eventmesh/router"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumer runtime's Prometheus metrics, labelled by
// consumer and (bounded, see router.MetricLabel) namespace.
type Metrics struct {
	delivered    *prometheus.CounterVec
	retried      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	pending      *prometheus.GaugeVec
	ackPending   *prometheus.GaugeVec
	paused       *prometheus.GaugeVec
	breakerOpen  *prometheus.GaugeVec
	dlqHeld      *prometheus.GaugeVec
}

// NewMetrics registers the runtime's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := []string{"consumer", "namespace"}
	m := &Metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_consumer_delivered_total",
			Help: "Events handled successfully (acknowledged)."}, ns),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_consumer_retried_total",
			Help: "Failed attempts that will be retried."}, ns),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_consumer_dead_lettered_total",
			Help: "Events copied to ENMESHED_DLQ and terminated."}, ns),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eventmesh_consumer_handler_seconds",
			Help: "Time a handler took for one attempt.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14)}, []string{"consumer"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventmesh_consumer_pending",
			Help: "Events in the stream not yet delivered to the consumer."}, []string{"consumer"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventmesh_consumer_ack_pending",
			Help: "Events delivered but not yet settled (including retries waiting out their delay)."}, []string{"consumer"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventmesh_consumer_paused",
			Help: "1 while the consumer is paused on the server."}, []string{"consumer"}),
		breakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventmesh_consumer_breaker_open",
			Help: "1 while this process's circuit breaker holds fetching."}, []string{"consumer"}),
		dlqHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventmesh_consumer_dlq_held",
			Help: "Events this process holds unacknowledged because ENMESHED_DLQ refused their dead letters (full)."}, []string{"consumer"}),
	}
	reg.MustRegister(m.delivered, m.retried, m.deadLettered, m.latency, m.pending, m.ackPending, m.paused, m.breakerOpen, m.dlqHeld)
	return m
}

func (m *Metrics) count(v *prometheus.CounterVec, consumer, namespace string) {
	v.WithLabelValues(consumer, router.MetricLabel(namespace)).Inc()
}
