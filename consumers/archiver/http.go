package archiver

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
)

// EventJSON is an archived event as the HTTP API and `eventmesh archive
// query --json` print it.
type EventJSON struct {
	ID           string              `json:"id"`
	Subject      string              `json:"subject"`
	Type         string              `json:"type"`
	Source       string              `json:"source"`
	Time         time.Time           `json:"time"`
	StreamSeq    uint64              `json:"stream_seq"`
	Origin       string              `json:"origin"`
	Headers      map[string][]string `json:"headers,omitempty"`
	Data         json.RawMessage     `json:"data,omitempty"`        // the data JSON, when it is JSON in UTF-8
	DataBase64   string              `json:"data_base64,omitempty"` // otherwise (not JSON, invalid UTF-8), base64
	Unsubscribed bool                `json:"unsubscribed"`
	ArchivedAt   time.Time           `json:"archived_at"`
	Outcomes     []OutcomeJSON       `json:"outcomes,omitempty"`
}

// OutcomeJSON is one outcome in EventJSON.
type OutcomeJSON struct {
	Consumer string    `json:"consumer"`
	Result   string    `json:"result"`
	Attempt  int       `json:"attempt"`
	Error    string    `json:"error,omitempty"`
	Time     time.Time `json:"time"`
}

// ToJSON converts a stored event.
func ToJSON(e store.Event) EventJSON {
	j := EventJSON{ID: e.ID, Subject: e.Subject, Type: e.Type, Source: e.Source, Time: e.Time, StreamSeq: e.StreamSeq,
		Origin: e.Origin, Headers: e.Headers, Unsubscribed: e.Unsubscribed, ArchivedAt: e.ArchivedAt}
	if len(e.Data) > 0 {
		if router.ValidJSON(e.Data) {
			j.Data = e.Data
		} else {
			j.DataBase64 = base64.StdEncoding.EncodeToString(e.Data)
		}
	}
	for _, o := range e.Outcomes {
		j.Outcomes = append(j.Outcomes, OutcomeJSON{Consumer: o.Consumer, Result: o.Result, Attempt: o.Attempt, Error: o.Error, Time: o.Time})
	}
	return j
}

// ParseTime reads a time bound: RFC 3339, or a duration meaning that long
// ago ("24h", "7d": streams.ParseDuration).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := streams.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 or a duration ago such as 24h or 7d", s)
	}
	return t, nil
}

// FilterFromQuery reads a Filter from URL query parameters: type, source,
// since, until, id, outcome, peer, cursor, limit, outcomes=true.
func FilterFromQuery(q url.Values, now time.Time) (store.Filter, error) {
	f := store.Filter{Type: q.Get("type"), Source: q.Get("source"), ID: q.Get("id"), Outcome: q.Get("outcome"),
		Peer: q.Get("peer"), Cursor: q.Get("cursor"), WithOutcomes: q.Get("outcomes") == "true"}
	if f.Type != "" {
		if err := store.ValidateType(f.Type); err != nil {
			return f, err
		}
	}
	var err error
	if f.Since, err = ParseTime(q.Get("since"), now); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = ParseTime(q.Get("until"), now); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if l := q.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > store.MaxLimit {
			return f, fmt.Errorf("limit %q: want 1 to %d", l, store.MaxLimit)
		}
	}
	switch f.Outcome {
	case "", store.ResultDelivered, store.ResultRetried, store.ResultDeadLettered, store.ResultPaused, store.Unsubscribed:
	default:
		return f, fmt.Errorf("outcome %q: want delivered, retried, dead_lettered, paused or unsubscribed", f.Outcome)
	}
	return f, nil
}

// Handler returns the read-only archive API: GET /events (filters as
// FilterFromQuery, paginated: {"events": [...], "next": "<cursor>"}) and
// GET /events/{id} (the event with its outcomes). With a key, every
// request must carry it in X-API-KEY.
func Handler(st store.Store, apiKey string) http.Handler {
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if apiKey != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-KEY")), []byte(apiKey)) != 1 {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key in header X-API-KEY")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /events", auth(func(w http.ResponseWriter, r *http.Request) {
		f, err := FilterFromQuery(r.URL.Query(), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_query", err.Error())
			return
		}
		page, err := st.Query(r.Context(), f)
		if errors.Is(err, store.ErrBadFilter) || errors.Is(err, store.ErrBadCursor) {
			writeError(w, http.StatusBadRequest, "invalid_query", err.Error())
			return
		}
		if err != nil { // the store failed, not the request
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		out := struct {
			Events []EventJSON `json:"events"`
			Next   string      `json:"next,omitempty"`
		}{Events: []EventJSON{}, Next: page.Next}
		for _, e := range page.Events {
			out.Events = append(out.Events, ToJSON(e))
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("GET /events/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		e, err := st.Get(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no archived event with this id")
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, ToJSON(e))
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "GET /events or /events/{id}")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
