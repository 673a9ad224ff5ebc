package admin

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// WriteBody writes an event's body for a person: indented when it is JSON,
// as text when it is UTF-8, as a hex dump otherwise (`eventmesh dlq show`,
// the console's event and dead-letter pages).
func WriteBody(w io.Writer, data []byte) {
	var buf bytes.Buffer
	switch {
	case len(data) == 0:
		fmt.Fprintln(w, "(empty)")
	case json.Indent(&buf, data, "", "  ") == nil:
		fmt.Fprintln(w, buf.String())
	case utf8.Valid(data):
		fmt.Fprintln(w, string(data))
	default:
		fmt.Fprint(w, hex.Dump(data))
	}
}

// HumanBytes formats n with a binary unit: 512 B, 1.5 KiB, 64.0 MiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
