package streams

import (
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// How full a stream is: the states of `eventmesh status` (stream.state,
// dlq.state) and of the producer's threshold log lines.
const (
	// FillOK is a stream below its warn ratio.
	FillOK = "ok"
	// FillFilling is a stream at or above its warn ratio that still takes
	// events.
	FillFilling = "filling"
	// FillFull is a stream that refuses events of the size it holds: less
	// room is left than one average stored message (or it holds its
	// message limit). A stream with DiscardNew refuses a message that does
	// not fit, so it never reaches 100 % exactly.
	FillFull = "full"
)

// WarnRatioKey is the metadata key of ENMESHED that holds STREAM_WARN_RATIO:
// the producer owns the STREAM_* settings, and status (in another process)
// reads the ratio from there.
const WarnRatioKey = "eventmesh.warn_ratio"

// DefaultWarnRatio is STREAM_WARN_RATIO's default, and the ratio of a
// stream whose metadata holds none (created by an older producer).
const DefaultWarnRatio = 0.8

// WarnRatio is the warn ratio stored in the metadata of c (an ENMESHED
// config), DefaultWarnRatio when it holds none or an unreadable one.
func WarnRatio(c jetstream.StreamConfig) float64 {
	r, err := strconv.ParseFloat(c.Metadata[WarnRatioKey], 64)
	if err != nil || !(r > 0 && r <= 1) {
		return DefaultWarnRatio
	}
	return r
}

// Fill is how full a stream is.
type Fill struct {
	Messages uint64
	Bytes    uint64
	MaxBytes int64 // -1 or 0: no byte limit
	MaxMsgs  int64 // -1 or 0: no message limit
	// Ratio is Bytes / MaxBytes; without a byte limit, Messages / MaxMsgs;
	// without either, 0 (a stream without limits fills only the disk,
	// which the server's own limits guard).
	Ratio float64
	State string // FillOK, FillFilling or FillFull
}

// FillOf is how full the stream of info is, with warn as the ratio from
// which it is filling.
func FillOf(info *jetstream.StreamInfo, warn float64) Fill {
	f := Fill{Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: info.Config.MaxBytes, MaxMsgs: info.Config.MaxMsgs,
		State: FillOK}
	full := false
	if f.MaxMsgs > 0 {
		f.Ratio = float64(f.Messages) / float64(f.MaxMsgs)
		full = f.Messages >= uint64(f.MaxMsgs)
	}
	if f.MaxBytes > 0 {
		f.Ratio = float64(f.Bytes) / float64(f.MaxBytes)
		left := uint64(f.MaxBytes) - min(f.Bytes, uint64(f.MaxBytes))
		avg := uint64(1)
		if f.Messages > 0 {
			avg = max(f.Bytes/f.Messages, 1)
		}
		full = full || left < avg
	}
	switch {
	case full:
		f.State = FillFull
	case f.Ratio >= warn:
		f.State = FillFilling
	}
	return f
}
