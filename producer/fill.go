package producer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// StreamWatch keeps the gauges of how full ENMESHED is fresh
// (eventmesh_stream_bytes, _max_bytes, _messages, _used_ratio) and logs
// each crossing of a fill threshold once, in both directions: filling (at
// STREAM_WARN_RATIO, read from the stream's metadata) and full.
type StreamWatch struct {
	gauges streamGauges
	log    *slog.Logger
	state  string // the last state seen; "" before the first look
}

// NewStreamWatch registers the stream gauges with reg.
func NewStreamWatch(reg prometheus.Registerer, log *slog.Logger) *StreamWatch {
	return &StreamWatch{gauges: newStreamGauges(reg), log: log}
}

// Run looks at st every interval (one stream info request) until ctx ends.
func (w *StreamWatch) Run(ctx context.Context, st jetstream.Stream, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		info, err := st.Info(actx)
		cancel()
		if err == nil {
			w.Observe(info)
		} else if ctx.Err() == nil {
			w.log.Debug("stream info for the fill gauges", "stream", streams.Events, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Observe sets the gauges from info and logs a crossing of a threshold.
func (w *StreamWatch) Observe(info *jetstream.StreamInfo) {
	warn := streams.WarnRatio(info.Config)
	f := streams.FillOf(info, warn)
	w.gauges.set(f)
	was := w.state
	w.state = f.State
	if f.State == was || was == "" && f.State == streams.FillOK {
		return
	}
	log := w.log.With("stream", info.Config.Name, "used_ratio", fmt.Sprintf("%.4f", f.Ratio), "bytes", f.Bytes,
		"max_bytes", f.MaxBytes, "messages", f.Messages, "warn_ratio", warn)
	switch f.State {
	case streams.FillFull:
		log.Error("stream is FULL: ingest refuses new events with 503 until events age out (STREAM_MAX_AGE); " +
			"raise STREAM_MAX_BYTES, or shorten STREAM_MAX_AGE once no consumer's oldest pending event is older (eventmesh status)")
	case streams.FillFilling:
		if was == streams.FillFull {
			log.Warn("stream is no longer full, but still at or above STREAM_WARN_RATIO")
			return
		}
		log.Warn("stream is filling: at or above STREAM_WARN_RATIO; when full, ingest answers 503")
	default:
		log.Info("stream is below STREAM_WARN_RATIO again")
	}
}
