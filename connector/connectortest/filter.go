package connectortest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// filters are the list filters of one request: field path → conditions,
// in the Connector's query syntax (see Filter), evaluated over the DTO's
// JSON the way the Runtime's database queries do: an array field matches
// when any element does, a false boolean counts as absent (the Runtime
// stores isOwn=false as undefined, hence PartialBooleanFilter).
type filters struct {
	conds   map[string][]string
	virtual map[string][]string
	regexps map[string]*regexp.Regexp
}

// parseFilters reads the query of a list route. A field the route does not
// take is an error, as the Runtime validates queries against the route's
// schema.
func parseFilters(q url.Values, allowed []string, virtual map[string][]string) (filters, error) {
	fs := filters{conds: map[string][]string{}, virtual: virtual, regexps: map[string]*regexp.Regexp{}}
	for field, exprs := range q {
		if !slices.Contains(allowed, field) {
			return fs, fmt.Errorf("query.%s is not a filter of this route; known: %s", field, strings.Join(allowed, ", "))
		}
		for _, e := range exprs {
			if re, ok := strings.CutPrefix(e, "~"); ok {
				c, err := regexp.Compile(re)
				if err != nil {
					return fs, fmt.Errorf("query.%s: invalid regular expression: %v", field, err)
				}
				fs.regexps[re] = c
			}
		}
		fs.conds[field] = exprs
	}
	return fs, nil
}

// match reports whether the DTO in raw meets every condition.
func (fs filters) match(raw []byte) (bool, error) {
	if len(fs.conds) == 0 {
		return true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return false, err
	}
	for field, exprs := range fs.conds {
		paths := fs.virtual[field]
		if paths == nil {
			paths = []string{field}
		}
		var vals []string
		for _, p := range paths {
			vals = append(vals, values(doc, strings.Split(p, "."))...)
		}
		if !fs.matchField(vals, exprs) {
			return false, nil
		}
	}
	return true, nil
}

// matchField applies one field's conditions: every negative one ("!x",
// "!") must hold, and at least one of the positive ones, if any.
func (fs filters) matchField(vals, exprs []string) bool {
	positive, anyHolds := false, false
	for _, e := range exprs {
		switch {
		case e == "!":
			if len(vals) > 0 {
				return false
			}
		case strings.HasPrefix(e, "!"):
			if slices.Contains(vals, e[1:]) {
				return false
			}
		default:
			positive = true
			if slices.ContainsFunc(vals, func(v string) bool { return fs.test(v, e) }) {
				anyHolds = true
			}
		}
	}
	return !positive || anyHolds
}

// test applies one positive condition to one value. Dates compare as
// text, as the Runtime's DateFilter does (ISO 8601 in UTC sorts).
func (fs filters) test(v, e string) bool {
	switch {
	case e == "":
		return true
	case strings.HasPrefix(e, ">="):
		return v >= e[2:]
	case strings.HasPrefix(e, "<="):
		return v <= e[2:]
	case strings.HasPrefix(e, ">"):
		return v > e[1:]
	case strings.HasPrefix(e, "<"):
		return v < e[1:]
	case strings.HasPrefix(e, "^"):
		return strings.HasPrefix(v, e[1:])
	case strings.HasPrefix(e, "$"):
		return strings.HasSuffix(v, e[1:])
	case strings.HasPrefix(e, "~"):
		return fs.regexps[e[1:]].MatchString(v)
	default:
		return v == e
	}
}

// values collects the scalar values at path in doc, descending into
// arrays; nil when the field is absent.
func values(doc any, path []string) []string {
	switch v := doc.(type) {
	case []any:
		var out []string
		for _, el := range v {
			out = append(out, values(el, path)...)
		}
		return out
	case map[string]any:
		if len(path) == 0 {
			return nil
		}
		return values(v[path[0]], path[1:])
	}
	if len(path) > 0 {
		return nil
	}
	switch v := doc.(type) {
	case string:
		return []string{v}
	case bool:
		if v {
			return []string{"true"}
		}
		return nil
	case json.Number:
		return []string{v.String()}
	}
	return nil
}
