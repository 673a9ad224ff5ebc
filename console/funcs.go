package console

import (
	"html/template"
	"strconv"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	// list is the outcomes a search may select.
	"list": func() []string {
		return []string{store.ResultDelivered, store.ResultRetried, store.ResultDeadLettered, store.ResultPaused, store.Unsubscribed}
	},
	// when formats a time in UTC to the second; "-" when zero or nil.
	"when": func(t any) string {
		var tt time.Time
		switch v := t.(type) {
		case time.Time:
			tt = v
		case *time.Time:
			if v != nil {
				tt = *v
			}
		}
		if tt.IsZero() {
			return "-"
		}
		return tt.UTC().Format("2006-01-02 15:04:05Z")
	},
	// age formats seconds (or nil) as a short duration.
	"age": func(secs *float64) string {
		if secs == nil {
			return "-"
		}
		return admin.ShortDuration(time.Duration(*secs * float64(time.Second)))
	},
	"percent": func(f float64) string { return template.HTMLEscapeString(formatPercent(f)) },
}

func formatPercent(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }
