package router

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pattern is one Connector trigger pattern.
//
// Trigger patterns (WEBHOOK_TRIGGERS) select events the way the enmeshed
// Connector's webhooks module does: its event bus (EventEmitter2EventBus of
// @js-soft/ts-utils) is an EventEmitter2 with wildcard: true and the default
// '.' delimiter, so a trigger is an EventEmitter2 event name:
//
//   - a literal token matches that token only;
//   - "*" matches exactly one token;
//   - "**" matches any number of tokens, zero included.
//
// The "**" rule is the one the EventEmitter2 README states under
// "Multi-level Wildcards": "A double wildcard (the string `**`) matches any
// number of levels (zero or more) of events", with the example that
// 'foo.**' observes 'foo', 'foo.bar' and 'foo.bar.baz'. Hence:
//
//	transport.**   matches transport, transport.x, transport.x.y
//	a.**.b         matches a.b, a.x.b, a.x.y.b
//	**.b           matches b, x.b
//	**             matches every namespace
//	*.**           matches every namespace (one or more tokens)
//	transport.*    matches transport.x, not transport nor transport.x.y
//
// We implement that documented rule exactly (a pattern is a glob over
// tokens), not the corner cases of EventEmitter2's tree walk
// (searchListenerTree in lib/eventemitter2.js), which for instance fires
// 'a.**.*' for 'a' and, choosing branches greedily, misses 'a.b.x.b' for
// 'a.**.b'. No sensible trigger depends on either quirk, and a rule that
// fits in one line is one operators can predict.
//
// The zero Pattern matches nothing; use ParsePattern.
type Pattern struct {
	// raw is the pattern as given; validation guarantees it is canonical
	// (no white space, no empty token), so String can return it unchanged
	// and ParsePattern(p.String()) reproduces p.
	raw string
	// tokens is raw split on '.', kept so Match does not split the pattern
	// on every event.
	tokens []string
}

// Wildcard tokens of a trigger pattern.
const (
	anyToken  = "*"  // exactly one token
	anyTokens = "**" // zero or more tokens
)

// patternError is the error of ParsePattern. It wraps ErrInvalidTrigger so
// callers can treat a bad pattern like any other bad trigger, while its text
// stays the short `trigger pattern "<input>": <reason>`.
type patternError struct {
	pattern string
	reason  string
}

func (e *patternError) Error() string {
	return "trigger pattern " + strconv.Quote(e.pattern) + ": " + e.reason
}

func (e *patternError) Unwrap() error { return ErrInvalidTrigger }

// ParsePattern validates s: tokens are either `*`, `**`, or [A-Za-z0-9_-]+;
// no empty token, no white space, no `>`, at most 16 tokens and 256 bytes.
// Errors are clear and quote the input, e.g.
// `trigger pattern "transport..x": empty token at position 2`; positions
// count tokens from 1. Every error wraps ErrInvalidTrigger.
//
// The limits are those of a namespace (MaxTriggerTokens, MaxTriggerBytes):
// a longer pattern could only match namespaces that cannot exist, so it is
// surely a mistake.
func ParsePattern(s string) (Pattern, error) {
	fail := func(format string, args ...any) (Pattern, error) {
		return Pattern{}, &patternError{pattern: s, reason: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return fail("pattern is empty")
	}
	if len(s) > MaxTriggerBytes {
		return fail("pattern is %d bytes long, at most %d are allowed", len(s), MaxTriggerBytes)
	}
	tokens := strings.Split(s, ".")
	if len(tokens) > MaxTriggerTokens {
		return fail("pattern has %d tokens, at most %d are allowed", len(tokens), MaxTriggerTokens)
	}
	for i, t := range tokens {
		pos := i + 1
		if t == "" {
			return fail("empty token at position %d", pos)
		}
		if t == anyToken || t == anyTokens {
			continue
		}
		for j := 0; j < len(t); {
			if tokenByte(t[j]) {
				j++
				continue
			}
			r, _ := utf8.DecodeRuneInString(t[j:])
			switch {
			case unicode.IsSpace(r):
				return fail("white space %q in token %q at position %d", r, t, pos)
			case r == '>':
				// '>' is NATS's "one or more tokens" wildcard; allowing it
				// would let a trigger widen the subject filter behind our
				// back. The EventEmitter2 spelling is "**".
				return fail(`">" is not allowed (token %q at position %d); use "**" for any number of tokens`, t, pos)
			case r == '*':
				return fail(`wildcard must be a whole token, "*" or "**", not %q at position %d`, t, pos)
			case r == utf8.RuneError:
				return fail("invalid UTF-8 in token %q at position %d", t, pos)
			default:
				return fail("character %q in token %q at position %d is not allowed (only ASCII letters, digits, '_' and '-')", r, t, pos)
			}
		}
	}
	return Pattern{raw: s, tokens: tokens}, nil
}

// String returns the pattern exactly as it was parsed.
func (p Pattern) String() string { return p.raw }

// Match reports whether the namespace (no prefix) matches.
//
// A namespace that is not valid (see ValidateTrigger: empty tokens,
// characters outside [A-Za-z0-9_-], more than 16 tokens or 256 bytes)
// matches no pattern: no such event can have been published, and refusing
// it keeps a wildcard-looking namespace such as "a.*" or "a.>" from ever
// being mistaken for a match.
func (p Pattern) Match(namespace string) bool {
	if len(p.tokens) == 0 {
		return false
	}
	// A fixed-size buffer keeps the split off the heap: Match runs for
	// every event and every pattern.
	var buf [MaxTriggerTokens]string
	ns, ok := splitNamespace(namespace, buf[:0])
	if !ok {
		return false
	}
	return matchTokens(p.tokens, ns)
}

// splitNamespace appends the tokens of namespace to dst and reports whether
// namespace is valid. It never grows dst beyond MaxTriggerTokens.
func splitNamespace(namespace string, dst []string) ([]string, bool) {
	if namespace == "" || len(namespace) > MaxTriggerBytes {
		return nil, false
	}
	start := 0
	for i := 0; i <= len(namespace); i++ {
		if i < len(namespace) && namespace[i] != '.' {
			if !tokenByte(namespace[i]) {
				return nil, false
			}
			continue
		}
		if i == start || len(dst) == MaxTriggerTokens {
			return nil, false
		}
		dst = append(dst, namespace[start:i])
		start = i + 1
	}
	return dst, true
}

// matchTokens is glob matching over tokens: "*" is glob's '?', "**" is
// glob's '*'. On a mismatch it backtracks to the most recent "**" and lets
// it absorb one more token; remembering only that last "**" is enough
// because an earlier one could only absorb tokens the later one can absorb
// too. With at most 16 tokens on either side the worst case is tiny.
func matchTokens(pat, ns []string) bool {
	pi, ni := 0, 0
	star, mark := -1, 0 // last "**" seen in pat, and the ns index it resumes from
	for ni < len(ns) {
		if pi < len(pat) {
			switch pat[pi] {
			case anyTokens:
				star, mark = pi, ni
				pi++
				continue
			case anyToken:
				pi++
				ni++
				continue
			default:
				if pat[pi] == ns[ni] {
					pi++
					ni++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		mark++
		pi, ni = star+1, mark
	}
	// The namespace is used up: only "**" (matching zero tokens) may remain.
	for pi < len(pat) && pat[pi] == anyTokens {
		pi++
	}
	return pi == len(pat)
}

// FilterSubject returns the NATS filter subject under prefix that covers
// every namespace the pattern matches, and exact=true when the filter
// matches exactly the same set (so no in-process Match is needed). `**` →
// `<prefix>.>`, `transport.*` → `<prefix>.transport.*`, `a.**.b` →
// `<prefix>.a.>` with exact=false.
//
// Because "**" also matches zero tokens (see Pattern), `transport.**`
// matches the namespace "transport" itself, which `<prefix>.transport.>`
// does not cover (NATS '>' needs at least one token). Coverage is the
// promise callers rely on, so a trailing "**" after a literal widens the
// filter by one level: `transport.**` → `<prefix>.>` and `a.b.**` →
// `<prefix>.a.>`, both with exact=false.
// Patterns.FilterSubjects has no such loss: it can return several subjects
// and gives `<prefix>.transport` plus `<prefix>.transport.>`, exactly.
//
// Other rules: a pattern without "**" becomes the same tokens, exactly.
// Tokens after the first "**" cannot be expressed in NATS (it has no
// "ends with"), so they only add a minimum length: `a.**.*.*` →
// `<prefix>.a.*.>` (exact, all wildcards) and `a.**.b.c` → `<prefix>.a.*.>`
// (not exact). `*.**` → `<prefix>.>`, exactly.
//
// "Exact" ranges over valid namespaces (at most 16 tokens): '>' also
// matches longer subjects, but no event can be published on them.
//
// An empty prefix yields the bare namespace filter. The zero Pattern, which
// matches nothing, yields "" and exact=false: NATS reads an empty filter as
// "everything", and exact=false makes the caller's Match drop it all.
func (p Pattern) FilterSubject(prefix string) (subject string, exact bool) {
	if len(p.tokens) == 0 {
		return "", false
	}
	toks, exact := coverTokens(p.tokens)
	return joinSubject(prefix, toks), exact
}

// coverTokens returns the single NATS filter (as tokens) covering pattern
// tokens pat, and whether it is exact. See FilterSubject for the rules.
func coverTokens(pat []string) ([]string, bool) {
	k := slices.Index(pat, anyTokens)
	if k < 0 {
		// NATS '*' is EventEmitter2's '*': one token.
		return slices.Clone(pat), true
	}
	head, rest := pat[:k], pat[k+1:]
	// After the first "**" every non-"**" token takes exactly one
	// namespace token somewhere, so m is the least number of tokens after
	// head; where they sit is not expressible, so only their count is kept.
	m, onlyWildcards := 0, true
	for _, t := range rest {
		if t == anyTokens {
			continue
		}
		m++
		if t != anyToken {
			onlyWildcards = false
		}
	}
	if m > 0 {
		// head, then m or more tokens: head.*^(m-1).>, exact when nothing
		// after the "**" constrains what those tokens are.
		out := slices.Clone(head)
		for range m - 1 {
			out = append(out, anyToken)
		}
		return append(out, ">"), onlyWildcards
	}
	// head followed by zero or more tokens.
	if k == 0 {
		// Only "**": every (non-empty) namespace.
		return []string{">"}, true
	}
	// head itself must be covered too, so back off one level: the last
	// head token joins the '>'. That is exact only when it was "*" anyway
	// ("a.*.**" is "a" plus one or more tokens: "a.>").
	out := append(slices.Clone(head[:k-1]), ">")
	return out, head[k-1] == anyToken
}

// filterSets returns filters (as tokens) whose union covers the namespaces
// pat matches, and whether the union is exact. Unlike coverTokens it may
// return two filters, which rescues the common "transport.**": the pattern
// is exactly "transport" or "transport.>".
func filterSets(pat []string) ([][]string, bool) {
	toks, exact := coverTokens(pat)
	if exact {
		return [][]string{toks}, true
	}
	k := slices.Index(pat, anyTokens)
	for _, t := range pat[k+1:] {
		if t != anyTokens {
			// Something follows the "**": no finite set of NATS filters
			// expresses it, so keep the single over-approximation.
			return [][]string{toks}, false
		}
	}
	// pat is head then only "**"s: exactly head, or head plus one or more.
	head := pat[:k]
	return [][]string{slices.Clone(head), append(slices.Clone(head), ">")}, true
}

// joinSubject puts prefix before the filter tokens.
func joinSubject(prefix string, toks []string) string {
	s := strings.Join(toks, ".")
	if prefix == "" {
		return s
	}
	return prefix + "." + s
}

// Patterns is a list of patterns (WEBHOOK_TRIGGERS), matching when any matches.
type Patterns []Pattern

// ParsePatterns splits s on commas and/or white space; empty input is an error.
//
// Runs of separators count as one, so "a, b", "a,b" and "a\n  b" all give
// two patterns and a trailing comma is harmless. Input with no pattern at
// all (empty, or only separators) is an error rather than "match nothing",
// because a webhook that can never fire is a configuration mistake. The
// order is kept and duplicates are not removed (FilterSubjects
// deduplicates what matters). Errors quote the whole input and, for a bad
// pattern, which one it is; they wrap ErrInvalidTrigger.
func ParsePatterns(s string) (Patterns, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 0 {
		return nil, fmt.Errorf("trigger patterns %q: %w: no pattern given", s, ErrInvalidTrigger)
	}
	ps := make(Patterns, 0, len(fields))
	for i, f := range fields {
		p, err := ParsePattern(f)
		if err != nil {
			return nil, fmt.Errorf("trigger patterns %q: pattern %d of %d: %w", s, i+1, len(fields), err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether any pattern matches the namespace (no prefix). An
// empty list matches nothing.
func (ps Patterns) Match(namespace string) bool {
	for _, p := range ps {
		if p.Match(namespace) {
			return true
		}
	}
	return false
}

// FilterSubjects returns the deduplicated, minimal NATS filter subjects
// (drop a subject covered by another, e.g. if one is `<prefix>.>` it is the
// only one), sorted; and exact=true when all are exact.
//
// Each pattern contributes the filters described at FilterSubject, except
// that a pattern ending in "**" after a literal contributes two exact
// filters instead of one wide one: `transport.**` gives
// `<prefix>.transport` and `<prefix>.transport.>`. A JetStream consumer
// takes the list as its FilterSubjects. Dropping covered subjects changes
// neither the union nor exactness, and keeps JetStream from being handed
// overlapping filters, which it rejects.
//
// A list with no (non-zero) pattern yields no subjects and exact=false,
// for the reason given at FilterSubject; ParsePatterns never returns one.
func (ps Patterns) FilterSubjects(prefix string) (subjects []string, exact bool) {
	var filters [][]string
	exact = true
	for _, p := range ps {
		if len(p.tokens) == 0 {
			continue
		}
		fs, ex := filterSets(p.tokens)
		filters = append(filters, fs...)
		exact = exact && ex
	}
	if len(filters) == 0 {
		return nil, false
	}
	// Deduplicate first: two equal filters cover each other, and the
	// covering pass below would otherwise drop both.
	seen := make(map[string]bool, len(filters))
	uniq := filters[:0]
	for _, f := range filters {
		key := strings.Join(f, ".")
		if !seen[key] {
			seen[key] = true
			uniq = append(uniq, f)
		}
	}
	for i, f := range uniq {
		covered := false
		for j, g := range uniq {
			if i != j && filterCovers(g, f) {
				covered = true
				break
			}
		}
		if !covered {
			subjects = append(subjects, joinSubject(prefix, f))
		}
	}
	slices.Sort(subjects)
	return subjects, exact
}

// filterCovers reports whether every subject matching NATS filter f also
// matches filter g (both as tokens). Distinct filters never cover each
// other both ways, so dropping every covered filter keeps one of each
// chain.
func filterCovers(g, f []string) bool {
	for i, gt := range g {
		if gt == ">" {
			// One or more tokens of anything, wildcards of f included.
			return len(f) > i
		}
		if i >= len(f) {
			return false
		}
		switch ft := f[i]; {
		case gt == anyToken:
			// '*' takes any single token but not the several of '>'.
			if ft == ">" {
				return false
			}
		case gt != ft:
			// A literal covers only itself, never a wildcard.
			return false
		}
	}
	return len(f) == len(g)
}

// String returns the patterns joined by commas, which ParsePatterns reads
// back to the same list.
func (ps Patterns) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
